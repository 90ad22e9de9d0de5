/* fs.c — the file-system calls Lua's io library lacks, for files that hold secrets or records:
 * private (0600) files written atomically, append-only records that never follow a link and are
 * synced line by line, bounded reads of regular files only, a writability check made before a
 * run changes anything, directories made with a mode, chmod, stat mode, and the removal of
 * temporary files a killed writer left behind.
 * Module "t2t.core.fs".  No shell: paths are never quoted or interpreted. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
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

/* fs.mode(path) -> permission bits (e.g. 0x180 for 0600), owner uid | nil, err */
static int l_mode(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    struct stat st;
    if (stat(path, &st) != 0) return fail(L, "cannot stat", path, errno);
    lua_pushinteger(L, st.st_mode & 07777);
    lua_pushinteger(L, (lua_Integer)st.st_uid);
    return 2;
}

/* fs.uid() -> the effective user id of this process */
static int l_uid(lua_State *L) {
    lua_pushinteger(L, (lua_Integer)geteuid());
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

/* A new temporary file beside path (tmp = path.t2tXXXXXX, made 0600 by mkstemp), locked
 * (flock) for as long as its writer lives: fs.remove_stale removes only unlocked ones, those a
 * killed writer left.  A temp removed by a cleaner between mkstemp and flock is made again.
 * Returns the fd, or -1 with errno set. */
static int locked_temp(char *tmp, size_t len) {
    for (int tries = 0; tries < 5; tries++) {
        memcpy(tmp + len, ".t2tXXXXXX", sizeof ".t2tXXXXXX");
        int fd = mkstemp(tmp);                        /* 0600, O_EXCL */
        if (fd < 0) return -1;
        struct stat st;
        if (flock(fd, LOCK_EX) == 0 && fstat(fd, &st) == 0 && st.st_nlink > 0) return fd;
        close(fd);
    }
    errno = EAGAIN;
    return -1;
}

/* fs.write_private(path, data) -> true | nil, err: the file holds exactly data with mode 0600,
 * replaced atomically (a temporary file made 0600 by mkstemp in the same directory, synced,
 * renamed over path while still locked), so it is never readable by others nor seen
 * half-written.  Missing parent directories are made 0700. */
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
    int fd = locked_temp(tmp, len);
    if (fd < 0) return fail(L, "cannot create a file beside", path, errno);
    int err = write_all(fd, data, dlen);
    if (!err && fsync(fd) != 0) err = errno;
    if (!err && rename(tmp, path) != 0) err = errno;  /* before close: the lock covers it */
    if (err) unlink(tmp);
    if (close(fd) != 0 && !err) err = errno;
    if (err) return fail(L, "cannot write", path, err);
    lua_pushboolean(L, 1);
    return 1;
}

/* Is name base + ".t2t" + six mkstemp characters? */
static int temp_of(const char *name, const char *base, size_t blen) {
    if (strncmp(name, base, blen) != 0 || strncmp(name + blen, ".t2t", 4) != 0) return 0;
    const char *x = name + blen + 4;
    for (int i = 0; i < 6; i++) {
        char c = x[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))) return 0;
    }
    return x[6] == '\0';
}

/* Remove full if it is a stale temporary file: a regular file of ours that no writer holds
 * locked (write_private keeps its temp locked until it is renamed).  1 when removed. */
static int remove_if_stale(const char *full) {
    int fd = open(full, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return 0;
    struct stat st, now;
    int removed = 0;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid()
        && flock(fd, LOCK_EX | LOCK_NB) == 0
        && lstat(full, &now) == 0 && now.st_ino == st.st_ino && now.st_dev == st.st_dev)
        removed = unlink(full) == 0;                /* still that file, and nobody writes it */
    close(fd);
    return removed;
}

/* An append-only record file (audit, logs): opened without following a link, regular files only,
 * each write synced, and a failed write cut back so the file never ends with half a record. */
typedef struct { int fd, sync; } AppendFile;

static int l_append_write(lua_State *L);

static int append_close(lua_State *L) {
    AppendFile *f = luaL_checkudata(L, 1, "t2t.fs.AppendFile");
    if (f->fd >= 0) {
        close(f->fd);
        f->fd = -1;
    }
    return 0;
}

/* Refuse what a record or secret must never be written through: a symbolic link (a planted link
 * would redirect a privileged write), a directory, a FIFO or device that could block or discard. */
static const char *not_regular(const struct stat *st) {
    if (S_ISLNK(st->st_mode)) return "is a symbolic link";
    if (S_ISDIR(st->st_mode)) return "is a directory";
    if (!S_ISREG(st->st_mode)) return "is not a regular file";
    return NULL;
}

/* fs.open_append(path [, mode = 0600 [, sync = true]]) -> file | nil, err.  file:write(s)
 * appends s in one write and syncs it unless sync is false (a request log, where a lost tail
 * costs nothing) (true | nil, err; on error the file is cut back to its previous length);
 * file:close().  Missing parents are made 0700; a link, directory or special file is refused. */
static int l_open_append(lua_State *L) {
    size_t len;
    const char *path = luaL_checklstring(L, 1, &len);
    mode_t mode = (mode_t)luaL_optinteger(L, 2, 0600);
    int sync = lua_isnoneornil(L, 3) || lua_toboolean(L, 3);
    AppendFile *f = lua_newuserdatauv(L, sizeof *f, 0);
    f->fd = -1;
    f->sync = sync;
    if (luaL_newmetatable(L, "t2t.fs.AppendFile")) {
        lua_pushcfunction(L, append_close);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, append_close);
        lua_setfield(L, -2, "__close");
        lua_pushvalue(L, -1);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, append_close);
        lua_setfield(L, -2, "close");
        lua_pushcfunction(L, l_append_write);
        lua_setfield(L, -2, "write");
    }
    lua_setmetatable(L, -2);
    char *buf = lua_newuserdatauv(L, len + 1, 0);
    memcpy(buf, path, len + 1);
    char *slash = strrchr(buf, '/');
    if (slash && slash != buf) {
        *slash = '\0';
        int err = mkdirs(buf, 0700);
        if (err) return fail(L, "cannot create directory", buf, err);
    }
    lua_pop(L, 1);
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, mode);
    if (fd < 0) {
        if (errno == ELOOP || errno == ENXIO) {    /* a link; a FIFO nobody reads */
            lua_pushnil(L);
            lua_pushfstring(L, "cannot write %s: it %s", path, errno == ELOOP
                            ? "is a symbolic link (refused: give the real path)" : "is not a regular file");
            return 2;
        }
        return fail(L, "cannot open", path, errno);
    }
    struct stat st;
    const char *why = fstat(fd, &st) != 0 ? strerror(errno) : not_regular(&st);
    if (why) {
        close(fd);
        lua_pushnil(L);
        lua_pushfstring(L, "cannot write %s: it %s", path, why);
        return 2;
    }
    fcntl(fd, F_SETFL, O_WRONLY | O_APPEND);        /* blocking writes from here on */
    f->fd = fd;
    return 1;
}

static int l_append_write(lua_State *L) {
    AppendFile *f = luaL_checkudata(L, 1, "t2t.fs.AppendFile");
    size_t n;
    const char *s = luaL_checklstring(L, 2, &n);
    if (f->fd < 0) return luaL_error(L, "attempt to use a closed file");
    struct stat st;
    off_t before = fstat(f->fd, &st) == 0 ? st.st_size : -1;
    int err = write_all(f->fd, s, n);
    if (!err && f->sync && fdatasync(f->fd) != 0) err = errno;
    if (err) {
        if (before >= 0 && ftruncate(f->fd, before) != 0) { /* best effort: keep whole records */ }
        lua_pushnil(L);
        lua_pushstring(L, strerror(err));
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* fs.read_file(path, max_bytes) -> data | nil, err: a regular file (through links: reading is
 * safe) of at most max_bytes.  A FIFO, device or directory is refused without blocking on it, and
 * a file over the cap is refused before it is read, with a message naming the file and the cap. */
static int l_read_file(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    lua_Integer max = luaL_checkinteger(L, 2);
    luaL_argcheck(L, max >= 0, 2, "cap must be >= 0");
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return fail(L, "cannot read", path, errno);
    struct stat st;
    const char *why = fstat(fd, &st) != 0 ? strerror(errno) : not_regular(&st);
    if (why) {
        close(fd);
        lua_pushnil(L);
        lua_pushfstring(L, "cannot read %s: it %s", path, why);
        return 2;
    }
    if (st.st_size > max) {
        close(fd);
        lua_pushnil(L);
        lua_pushfstring(L, "cannot read %s: it is %I bytes, more than the %I this file may hold",
                        path, (lua_Integer)st.st_size, max);
        return 2;
    }
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    lua_Integer total = 0;
    char chunk[8192];
    for (;;) {
        ssize_t r = read(fd, chunk, sizeof chunk);
        if (r < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            close(fd);
            return fail(L, "cannot read", path, e);
        }
        if (r == 0) break;
        total += r;
        if (total > max) {                          /* grew while we read */
            close(fd);
            lua_pushnil(L);
            lua_pushfstring(L, "cannot read %s: it is more than the %I bytes this file may hold", path, max);
            return 2;
        }
        luaL_addlstring(&b, chunk, (size_t)r);
    }
    close(fd);
    luaL_pushresult(&b);
    return 1;
}

/* fs.check_write(path) -> "new" | "existing" | nil, err: whether path can be written, asked
 * before a run changes anything.  A link, directory or special file is refused; an existing file
 * must be writable; a new file needs an existing parent directory we may write to.  (A parent
 * that does not exist yet is fine when an existing ancestor is writable: writers make it.) */
static int l_check_write(lua_State *L) {
    size_t len;
    const char *path = luaL_checklstring(L, 1, &len);
    struct stat st;
    if (lstat(path, &st) == 0) {
        const char *why = not_regular(&st);
        if (why) {
            lua_pushnil(L);
            lua_pushfstring(L, "cannot write %s: it %s", path, why);
            return 2;
        }
        if (access(path, W_OK) != 0) return fail(L, "cannot write", path, errno);
        lua_pushliteral(L, "existing");
        return 1;
    }
    if (errno != ENOENT) return fail(L, "cannot write", path, errno);
    char *buf = lua_newuserdatauv(L, len + 2, 0);
    memcpy(buf, path, len + 1);
    for (;;) {                                      /* the nearest existing ancestor */
        char *slash = strrchr(buf, '/');
        if (!slash) { strcpy(buf, "."); }
        else if (slash == buf) { buf[1] = '\0'; }
        else *slash = '\0';
        if (stat(buf, &st) == 0) break;
        if (errno != ENOENT || strcmp(buf, ".") == 0 || strcmp(buf, "/") == 0) return fail(L, "cannot write", path, errno);
    }
    if (!S_ISDIR(st.st_mode)) return fail(L, "cannot write", path, ENOTDIR);
    if (access(buf, W_OK | X_OK) != 0) {
        int e = errno;
        lua_pushnil(L);
        lua_pushfstring(L, "cannot write %s: directory %s: %s", path, buf, strerror(e));
        return 2;
    }
    lua_pushliteral(L, "new");
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

/* A new directory handle on the stack, in the closed state (liolib): open it last. */
static DIR **new_dir(lua_State *L) {
    DIR **d = lua_newuserdatauv(L, sizeof *d, 0);
    *d = NULL;
    if (luaL_newmetatable(L, "t2t.fs.Dir")) {
        lua_pushcfunction(L, dir_close);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, dir_close);
        lua_setfield(L, -2, "__close");
    }
    lua_setmetatable(L, -2);
    return d;
}

/* fs.list(dir) -> sorted list of the names in dir (no "." or "..") | nil, err */
static int l_list(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    DIR **d = new_dir(L);
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

/* fs.remove_stale(path) -> number removed | nil, err: the temporary files of write_private(path)
 * that a killed writer left (path.t2tXXXXXX, unlocked); a live writer's is never touched. */
static int l_remove_stale(lua_State *L) {
    size_t len;
    const char *path = luaL_checklstring(L, 1, &len);
    char *dir = lua_newuserdatauv(L, len + 2, 0);      /* the directory, then dir/NAME */
    memcpy(dir, path, len + 1);
    char *slash = strrchr(dir, '/');
    const char *base = path;
    if (slash) {
        base = path + (slash - dir) + 1;
        slash[slash == dir ? 1 : 0] = '\0';
    } else strcpy(dir, ".");
    size_t blen = strlen(base), dlen = strlen(dir);
    char *full = lua_newuserdatauv(L, dlen + 2 + 256, 0);
    DIR **d = new_dir(L);
    *d = opendir(dir);                                 /* the resource last */
    if (!*d) {
        if (errno == ENOENT) { lua_pushinteger(L, 0); return 1; }
        return fail(L, "cannot read directory", dir, errno);
    }
    int n = 0;
    struct dirent *e;
    while ((e = readdir(*d)) != NULL) {
        if (!temp_of(e->d_name, base, blen) || strlen(e->d_name) > 255) continue;
        snprintf(full, dlen + 2 + 256, "%s/%s", dir, e->d_name);
        n += remove_if_stale(full);
    }
    closedir(*d);
    *d = NULL;
    lua_pushinteger(L, n);
    return 1;
}

int luaopen_t2t_fs(lua_State *L) {
    static const luaL_Reg fns[] = {
        {"mkdir", l_mkdir}, {"chmod", l_chmod}, {"mode", l_mode}, {"uid", l_uid}, {"list", l_list},
        {"write_private", l_write_private}, {"open_append", l_open_append},
        {"read_file", l_read_file}, {"check_write", l_check_write}, {"remove_stale", l_remove_stale},
        {NULL, NULL}};
    luaL_newlib(L, fns);
    return 1;
}
