/* term.c — the terminal: isatty, window size, line editing (libedit), history, completion,
 * and reading a secret without echo.  Module "t2t.core.term".
 *
 * libedit's readline interface is process-global, so the one completion callback is reached
 * through the statics below, which are set only for the duration of term.readline().  The
 * completion callback calls the Lua completer under lua_pcall and copies the strings into C
 * before handing them to libedit: no Lua error can unwind through libedit. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>
#include <editline/readline.h>

#include "host.h"

static lua_State *comp_L;            /* valid only inside term.readline */
static int comp_ref = LUA_NOREF;     /* the Lua completer, kept in the registry */
static char **comp_list;             /* candidates copied from Lua for the generator */
static size_t comp_n, comp_i;

static void comp_free(void) {
    for (size_t i = 0; i < comp_n; i++) free(comp_list[i]);
    free(comp_list);
    comp_list = NULL;
    comp_n = comp_i = 0;
}

/* Protected (lua_pcall): call completer(word, line) and copy the strings of the list it
 * returns into comp_list.  Everything that can raise (the completer, a __len, memory
 * errors) runs in here, so no Lua error unwinds through libedit; comp_list is a static that
 * comp_attempt frees, so a raise strands nothing. */
static int comp_call(lua_State *L) {
    const char *text = lua_touserdata(L, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, comp_ref);
    lua_pushstring(L, text);
    lua_pushstring(L, rl_line_buffer ? rl_line_buffer : "");
    lua_call(L, 2, 1);
    if (!lua_istable(L, -1)) return 0;
    lua_Integer n = luaL_len(L, -1);
    if (n <= 0 || n > 100000) return 0;      /* more candidates than anyone reads */
    comp_list = calloc((size_t)n, sizeof *comp_list);
    for (lua_Integer i = 1; comp_list && i <= n; i++) {
        lua_rawgeti(L, -1, i);
        const char *s = lua_tostring(L, -1);
        if (s && (comp_list[comp_n] = strdup(s)) != NULL) comp_n++;
        lua_pop(L, 1);
    }
    return 0;
}

/* Fill comp_list for text; on any error, no candidates. */
static void comp_fill(const char *text) {
    lua_State *L = comp_L;
    comp_free();
    if (!L || comp_ref == LUA_NOREF || !lua_checkstack(L, 4)) return;
    lua_pushcfunction(L, comp_call);         /* light C function and pointer: cannot fail */
    lua_pushlightuserdata(L, (void *)text);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
        lua_pop(L, 1);
        comp_free();                         /* a half-copied list is no list */
    }
}

static char *comp_generator(const char *text, int state) {
    (void)text;
    if (state == 0) comp_i = 0;
    return comp_i < comp_n ? strdup(comp_list[comp_i++]) : NULL;
}

static char **comp_attempt(const char *text, int start, int end) {
    (void)start; (void)end;
    rl_attempted_completion_over = 1;        /* no file-name fallback */
    comp_fill(text);
    char **m = comp_n ? rl_completion_matches(text, comp_generator) : NULL;
    comp_free();
    return m;
}

/* term.readline(prompt) -> line | nil at end of input.  Ctrl-C at the prompt abandons the
 * line (returns "" and sets the second result to "interrupt"), it never ends the REPL. */
static volatile sig_atomic_t rl_interrupted;
static void rl_on_sigint(int sig) { (void)sig; rl_interrupted = 1; }

static int l_readline(lua_State *L) {
    const char *prompt = luaL_optstring(L, 1, "> ");
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = rl_on_sigint;            /* no SA_RESTART: the read returns EINTR */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old);
    rl_interrupted = 0;
    comp_L = L;
    char *line = readline(prompt);
    comp_L = NULL;
    sigaction(SIGINT, &old, NULL);
    if (rl_interrupted) {
        free(line);
        lua_pushliteral(L, "");
        lua_pushliteral(L, "interrupt");
        return 2;
    }
    if (!line) return 0;
    lua_pushstring(L, line);
    free(line);
    return 1;
}

/* term.set_completer(fn | nil): fn(word, line) -> list of full replacements for word. */
static int l_set_completer(lua_State *L) {
    if (!lua_isnoneornil(L, 1)) luaL_checktype(L, 1, LUA_TFUNCTION);
    luaL_unref(L, LUA_REGISTRYINDEX, comp_ref);
    comp_ref = LUA_NOREF;
    if (!lua_isnoneornil(L, 1)) {
        lua_pushvalue(L, 1);
        comp_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    rl_attempted_completion_function = comp_attempt;
    rl_basic_word_break_characters = " \t\n\"\\'`@$><=;|&{(+-*/%^~#,[]";
    rl_completion_append_character = '\0';
    return 0;
}

static int l_add_history(lua_State *L) {
    add_history(luaL_checkstring(L, 1));
    return 0;
}

/* term.load_history(path, max) / term.save_history(path, max) -> true | nil, err */
static int l_load_history(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    stifle_history((int)luaL_optinteger(L, 2, 1000));
    if (read_history(path) != 0 && errno != ENOENT) return luaL_fileresult(L, 0, path);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_save_history(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    int max = (int)luaL_optinteger(L, 2, 1000);
    if (write_history(path) != 0) return luaL_fileresult(L, 0, path);
    history_truncate_file(path, max);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_isatty(lua_State *L) {
    lua_pushboolean(L, isatty((int)luaL_checkinteger(L, 1)));
    return 1;
}

/* term.size() -> columns, rows (80, 24 when not a terminal) */
static int l_size(lua_State *L) {
    struct winsize ws;
    int cols = 80, rows = 24;
    if (ioctl(1, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) { cols = ws.ws_col; rows = ws.ws_row; }
    lua_pushinteger(L, cols);
    lua_pushinteger(L, rows);
    return 2;
}

static int getpass_push(lua_State *L) {
    lua_pushstring(L, lua_touserdata(L, 1));
    return 1;
}

/* term.getpass(prompt) -> line | nil: read one line from the terminal without echo. */
static int l_getpass(lua_State *L) {
    const char *prompt = luaL_optstring(L, 1, "");
    struct termios t, saved;
    int tty = isatty(0) && tcgetattr(0, &saved) == 0;
    fputs(prompt, stderr);
    fflush(stderr);
    if (tty) {
        t = saved;
        t.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(0, TCSAFLUSH, &t);
    }
    char buf[4096];
    char *ok = fgets(buf, sizeof buf, stdin);
    if (tty) {
        tcsetattr(0, TCSAFLUSH, &saved);
        fputc('\n', stderr);
    }
    if (ok) buf[strcspn(buf, "\r\n")] = '\0';
    /* copy out with a non-raising call, then wipe (explicit_bzero: a memset of a dead local
     * is removed by the optimiser), then push: a memory error cannot skip the wipe */
    char *copy = ok ? strdup(buf) : NULL;
    explicit_bzero(buf, sizeof buf);
    if (!ok) return 0;
    if (!copy) return luaL_error(L, "not enough memory");
    size_t n = strlen(copy);
    lua_pushcfunction(L, getpass_push);
    lua_pushlightuserdata(L, copy);
    int st = lua_pcall(L, 1, 1, 0);
    explicit_bzero(copy, n);
    free(copy);
    if (st != LUA_OK) return lua_error(L);
    return 1;
}

int luaopen_t2t_term(lua_State *L) {
    static const luaL_Reg fns[] = {
        {"readline", l_readline}, {"set_completer", l_set_completer},
        {"add_history", l_add_history}, {"load_history", l_load_history},
        {"save_history", l_save_history}, {"isatty", l_isatty}, {"size", l_size},
        {"getpass", l_getpass}, {NULL, NULL}};
    luaL_newlib(L, fns);
    return 1;
}
