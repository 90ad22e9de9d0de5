# t2t — plain GNU make + pkg-config.  See README.md.
#   make [all] | test | bench | demo | lint | install | clean | deps
#   V=1 (show commands)  SANITIZE=address,undefined  WERROR=1  PREFIX=/usr/local DESTDIR=

LUA_PC   ?= lua5.4
CJSON_PC ?= $(LUA_PC)-cjson
PKGS      = $(LUA_PC) $(CJSON_PC) libcurl openssl libedit libmicrohttpd libcares
PREFIX   ?= /usr/local
BINDIR   ?= $(PREFIX)/bin
LIBDIR   ?= $(PREFIX)/lib
MANDIR   ?= $(PREFIX)/share/man
DOCDIR   ?= $(PREFIX)/share/doc/t2t
B        ?= build
CC       ?= cc
VERSION  := $(shell cat VERSION 2>/dev/null || echo 0.0.0)

WARN   = -std=c11 -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes \
         -Wmissing-prototypes -Wformat=2 -Wimplicit-fallthrough
CFLAGS ?= -O2 -g
ifdef WERROR
WARN  += -Werror
endif
ifdef SANITIZE
CFLAGS  += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -O1
LDFLAGS += -fsanitize=$(SANITIZE)
B       := build/san
endif

ifeq ($(V),1)
Q =
else
Q = @
endif

PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
# lua5.4-cjson.pc names /usr/lib as libdir; the archive lives in the multiarch dir the linker searches.
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
ALL_CFLAGS = $(WARN) $(CFLAGS) -D_GNU_SOURCE -DT2T_VERSION='"$(VERSION)"' -iquote core -iquote $(B) $(PKG_CFLAGS) $(CPPFLAGS)
LIBS       = $(PKG_LIBS) -lpthread -lm

# Plugins: C modules whose libraries are costly to load (libcurl pulls in ~30 shared
# libraries, ~5 ms at every start; libmicrohttpd brings GnuTLS; libcrypto ~1 ms).  Each is a
# shared object in $(B)/lib/t2t/, loaded by the host on the first `require` of its module, so
# `t2t -e ''` starts about as fast as lua5.4.  Everything else is in the binary.
PLUGIN_http   = $(wildcard core/http*.c core/sched*.c)
PLUGIN_server = $(wildcard core/sim_server*.c)
PLUGIN_crypto = $(wildcard core/crypto*.c core/x509*.c)
PLUGIN_dns    = $(wildcard core/dns*.c)
PLUGIN_dkim   = $(wildcard core/dkim*.c)
PLUGINS       = http server crypto dns dkim
PLUGIN_SRC    = $(foreach p,$(PLUGINS),$(PLUGIN_$(p)))
PLUGIN_SO     = $(foreach p,$(PLUGINS),$(if $(PLUGIN_$(p)),$(B)/lib/t2t/$(p).so))
comma := ,
empty :=
space := $(empty) $(empty)
PLUGIN_ARGS   = $(foreach p,$(PLUGINS),$(if $(PLUGIN_$(p)),$(p)=$(subst $(space),$(comma),$(strip $(PLUGIN_$(p))))))

# make fuzz: the libFuzzer targets of tests/fuzz, built with Debian's clang into build/fuzz with
# ASan+UBSan and coverage, every C module linked in (no plugins: one instrumented binary).
ifdef FUZZ
CC      := clang
CFLAGS  += -fsanitize=address,undefined,fuzzer-no-link -fno-omit-frame-pointer -O1
LDFLAGS += -fsanitize=address,undefined
B       := build/fuzz
PLUGINS :=
endif
PLUGIN_PKGS_http   = libcurl
PLUGIN_PKGS_server = libmicrohttpd
PLUGIN_PKGS_crypto = openssl
PLUGIN_PKGS_dns    = libcares
PLUGIN_PKGS_dkim   = openssl

CORE_SRC = $(filter-out core/main.c $(PLUGIN_SRC),$(wildcard core/*.c))
CORE_OBJ = $(CORE_SRC:core/%.c=$(B)/core/%.o) $(B)/embedded.o $(B)/modules.o
PIC_OBJ  = $(PLUGIN_SRC:core/%.c=$(B)/pic/%.o)
LUA_SRC  = $(shell find lua -name '*.lua' | LC_ALL=C sort) $(sort $(wildcard scripts/*.lua))
CTESTS   = $(patsubst tests/c/%.c,$(B)/tests/%,$(wildcard tests/c/test_*.c))
BIN_LIBS = $(shell pkg-config --libs $(LUA_PC) $(CJSON_PC) libedit 2>/dev/null) -ldl -lpthread -lm

.PHONY: all test bench demo lint install clean deps check-deps fuzz fuzz-targets
all: $(B)/t2t

# deps: install the Debian packages we build, test, benchmark and lint with (as root), else print
# the apt-get line.  Plain `make` checks only the build set; test, bench and lint add theirs.
deps:
	$(Q)sh tools/deps.sh all

all: $(PLUGIN_SO)
$(B)/t2t: $(B)/core/main.o $(CORE_OBJ)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -rdynamic -o $@ $^ $(BIN_LIBS)

$(B)/pic/%.o: core/%.c $(B)/modules.h | deps-stamp
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $< (plugin)")
	$(Q)$(CC) $(ALL_CFLAGS) -fPIC -MMD -MP -c -o $@ $<

# A plugin links its own libraries; Lua and the host's symbols come from the executable.
.SECONDEXPANSION:
plugin_objs = $(patsubst core/%.c,$(B)/pic/%.o,$(PLUGIN_$(1)))
$(B)/lib/t2t/%.so: $$(call plugin_objs,$$*)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -shared -o $@ $^ $(shell pkg-config --libs $(PLUGIN_PKGS_$*) 2>/dev/null) -lpthread

$(B)/core/%.o: core/%.c $(B)/modules.h | deps-stamp
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

$(B)/%.o: $(B)/%.c | deps-stamp
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) -Wno-overlength-strings -c -o $@ $<

# Every core/*.c that defines luaopen_t2t_NAME becomes preloadable as "t2t.core.NAME".
$(B)/modules.c: $(CORE_SRC) $(PLUGIN_SRC) tools/modules.sh Makefile
	@mkdir -p $(B)
	$(Q)sh tools/modules.sh c $(CORE_SRC) $(PLUGIN_ARGS) > $@.tmp && mv $@.tmp $@
# The prototypes, rewritten only when the set of modules changes (so edits don't rebuild all).
$(B)/modules.h: $(CORE_SRC) $(PLUGIN_SRC) tools/modules.sh
	@mkdir -p $(B)
	$(Q)sh tools/modules.sh h $(CORE_SRC) $(PLUGIN_ARGS) > $@.tmp && \
		{ cmp -s $@.tmp $@ && rm -f $@.tmp || mv $@.tmp $@; }

# lua/**/*.lua and scripts/*.lua embedded as one C array (text; loaded lazily).
$(B)/embed: tools/embed.c
	@mkdir -p $(B)
	$(Q)$(CC) -O1 -o $@ $<
$(B)/embedded.c: $(B)/embed $(LUA_SRC)
	@$(if $(Q),echo "  EMBED   $(words $(LUA_SRC)) Lua files")
	$(Q)$(B)/embed $(LUA_SRC) > $@.tmp && mv $@.tmp $@

# A stamp so a missing -dev package is reported once, before any compiler error.
deps-stamp: $(B)/.deps-ok
$(B)/.deps-ok: tools/deps.sh
	$(Q)sh tools/deps.sh build
	@mkdir -p $(B) && touch $@
.PHONY: deps-stamp

# The plugins' objects are needed again by the C tests: never delete them as intermediates
# (make's "rm ..." line would also follow the test summary, which must be the last line).
.SECONDARY: $(PIC_OBJ)

# C unit tests link the plugins' objects directly (no dlopen needed).
$(B)/tests/%: tests/c/%.c $(CORE_OBJ) $(PIC_OBJ) tests/c/check.h
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) -Itests/c -o $@ $< $(CORE_OBJ) $(PIC_OBJ) $(LDFLAGS) -rdynamic $(LIBS) -ldl

# Fuzz targets link every core object (FUZZ=1 builds them instrumented, plugins linked in).
FUZZ_BIN = $(patsubst tests/fuzz/%.c,$(B)/fuzz/%,$(wildcard tests/fuzz/fuzz_*.c))
$(B)/fuzz/%: tests/fuzz/%.c tests/fuzz/fuzz.h $(CORE_OBJ)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $< (libFuzzer)")
	$(Q)$(CC) $(ALL_CFLAGS) -Itests/fuzz -fsanitize=fuzzer -o $@ $< $(CORE_OBJ) $(LDFLAGS) -rdynamic $(LIBS) -ldl
fuzz-targets: $(FUZZ_BIN)

# make fuzz: every target FUZZ_TIME seconds (default 600) from its corpus in tests/fuzz/corpus.
fuzz:
	$(Q)sh tools/deps.sh fuzz
	$(Q)$(MAKE) --no-print-directory -s FUZZ=1 fuzz-targets
	$(Q)FUZZ_BUILD=build/fuzz sh tests/fuzz/run.sh $(FUZZ_TARGETS)

test: $(B)/t2t $(PLUGIN_SO) $(CTESTS)
	$(Q)sh tools/deps.sh test
	$(Q)T2T_BUILD=$(B) sh tests/run.sh

bench: $(B)/t2t $(PLUGIN_SO)
	$(Q)sh tools/deps.sh bench
	$(Q)T2T_BUILD=$(B) sh tests/bench/run.sh

# The main job against the in-process simulator (scripts/demo.lua).
demo: $(B)/t2t $(PLUGIN_SO)
	$(Q)sh tools/deps.sh test
	$(Q)if [ -f scripts/demo.lua ]; then $(B)/t2t run demo; \
	else echo "make demo: no demo yet -- the setup runbooks it runs are not built" >&2; exit 1; fi

# cppcheck over the C, luacheck over the Lua (.luacheckrc); each half says what it checked.
lint:
	$(Q)sh tools/deps.sh lint
	$(Q)sh tools/lint.sh

install: $(B)/t2t $(PLUGIN_SO)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(DOCDIR) $(DESTDIR)$(LIBDIR)/t2t
	install -m 0755 $(B)/t2t $(DESTDIR)$(BINDIR)/t2t
	$(if $(PLUGIN_SO),install -m 0644 $(PLUGIN_SO) $(DESTDIR)$(LIBDIR)/t2t/)
	install -m 0644 docs/t2t.1 $(DESTDIR)$(MANDIR)/man1/t2t.1
	install -m 0644 README.md LICENSE $(DESTDIR)$(DOCDIR)/
	cp -R docs/. $(DESTDIR)$(DOCDIR)/ && rm -f $(DESTDIR)$(DOCDIR)/t2t.1
	cp -R examples $(DESTDIR)$(DOCDIR)/

clean:
	rm -rf build

-include $(wildcard $(B)/core/*.d $(B)/pic/*.d)
