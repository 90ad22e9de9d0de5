/* fs.c — the few file-system calls Lua's io library lacks, for files that hold secrets:
 * private (0600) files written atomically, directories made with a mode, chmod, stat mode.
 * Module "t2t.core.fs".  No shell: paths are never quoted or interpreted. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "host.h"

static int fail(lua_State *L, const char *what, const char *path, int err) {
    lua_pushnil(L);
    lua_pushfstring(L, "%s %s: %s", what, path, strerror(err));
    return 2;
}

/* Make dir and its missing parents with mode; existing ones are left as they are.
 * Returns 0 or an errno.  buf is modified in place (a copy of the path). */
static int mkdirs(char *buf, mode_t mode) {
    size_t n = strlen(buf);
    while (n > 1 && buf[n - 1] == '/') buf[--n] = '\0';
    for (char *p = buf + 1; ; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(buf, mode) != 0 && errno != EEXIST) return errno;
            *p = c;
            if (c == '\0') break;
        }
    }
    struct stat st;
    if (stat(buf, &st) != 0) return errno;
    return S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
}

/* fs.mkdir(path [, mode = 0700]) -> true | nil, err: like mkdir -p, new directories get mode. */
static int l_mkdir(lua_State *L) {
    size_t len;
    const char *path = luaL_checklstring(L, 1, &len);
    mode_t mode = (mode_t)luaL_optinteger(L, 2, 0700);
    char *buf = lua_newuserdatauv(L, len + 1, 0);   /* GC-owned: safe if anything raises */
    memcpy(buf, path, len + 1);
    int err = mkdirs(buf, mode);
    if (err) return fail(L, "cannot create directory", path, err);
    lua_pushboolean(L, 1);
    return 1;
}

/* fs.chmod(path, mode) -> true | nil, err */
static int l_chmod(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    mode_t mode = (mode_t)luaL_checkinteger(L, 2);
    if (chmod(path, mode) != 0) return fail(L, "cannot chmod", path, errno);
    lua_pushboolean(L, 1);
    return 1;
}

/* fs.mode(path) -> permission bits (e.g. 0x180 for 0600) | nil, err */
static int l_mode(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    struct stat st;
    if (stat(path, &st) != 0) return fail(L, "cannot stat", path, errno);
    lua_pushinteger(L, st.st_mode & 07777);
    return 1;
}

static int write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* fs.write_private(path, data) -> true | nil, err: the file holds exactly data with mode 0600,
 * replaced atomically (a temporary file made 0600 by mkstemp in the same directory, synced,
 * renamed over path), so it is never readable by others nor seen half-written.  Missing
 * parent directories are made 0700. */
static int l_write_private(lua_State *L) {
    size_t len, dlen;
    const char *path = luaL_checklstring(L, 1, &len);
    const char *data = luaL_checklstring(L, 2, &dlen);
    char *tmp = lua_newuserdatauv(L, len + 16, 0);   /* path.t2tXXXXXX */
    memcpy(tmp, path, len + 1);
    char *slash = strrchr(tmp, '/');
    if (slash && slash != tmp) {                      /* parent directory */
        *slash = '\0';
        int err = mkdirs(tmp, 0700);
        if (err) return fail(L, "cannot create directory", tmp, err);
    }
    memcpy(tmp, path, len);
    memcpy(tmp + len, ".t2tXXXXXX", sizeof ".t2tXXXXXX");
    int fd = mkstemp(tmp);                            /* 0600, O_EXCL */
    if (fd < 0) return fail(L, "cannot create a file beside", path, errno);
    int err = write_all(fd, data, dlen);
    if (!err && fsync(fd) != 0) err = errno;
    if (close(fd) != 0 && !err) err = errno;
    if (!err && rename(tmp, path) != 0) err = errno;
    if (err) {
        unlink(tmp);
        return fail(L, "cannot write", path, err);
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* An open directory held by a userdata, so a Lua error while listing cannot leak it. */
static int dir_close(lua_State *L) {
    DIR **d = luaL_checkudata(L, 1, "t2t.fs.Dir");
    if (*d) {
        closedir(*d);
        *d = NULL;
    }
    return 0;
}

/* fs.list(dir) -> sorted list of the names in dir (no "." or "..") | nil, err */
static int l_list(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    DIR **d = lua_newuserdatauv(L, sizeof *d, 0);      /* closed state first (liolib) */
    *d = NULL;
    if (luaL_newmetatable(L, "t2t.fs.Dir")) {
        lua_pushcfunction(L, dir_close);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, dir_close);
        lua_setfield(L, -2, "__close");
    }
    lua_setmetatable(L, -2);
    lua_newtable(L);
    *d = opendir(path);                                 /* the resource last */
    if (!*d) return fail(L, "cannot read directory", path, errno);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(*d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        lua_pushstring(L, e->d_name);
        lua_rawseti(L, -2, ++n);
    }
    closedir(*d);
    *d = NULL;
    lua_getglobal(L, "table");
    lua_getfield(L, -1, "sort");
    lua_pushvalue(L, -3);
    lua_call(L, 1, 0);
    lua_pop(L, 1);
    return 1;
}

int luaopen_t2t_fs(lua_State *L) {
    static const luaL_Reg fns[] = {
        {"mkdir", l_mkdir}, {"chmod", l_chmod}, {"mode", l_mode}, {"list", l_list},
        {"write_private", l_write_private}, {NULL, NULL}};
    luaL_newlib(L, fns);
    return 1;
}
