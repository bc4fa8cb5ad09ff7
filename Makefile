# edgecd - one Makefile for the daemon, its tests and the example plugins.
#
#   make            build/edgecd, build/edgecd-asan, build/edgecdctl, build/plugins/
#   make run        the daemon in the foreground on config/edgecd.yaml
#   make check      every test (unit, integration on a real runtime, ASan build);
#                   RUNTIME=/path/to/youki runs them on that runtime
#   make system     the daemon under a real systemd (tests/system, systemd-nspawn)
#   make check-v2   the cgroup v2 tier alone: the installed daemon on crun and
#                   runc in a QEMU VM (tests/system/check-v2.sh; cache build/vm/)
#   make bench      benchmark figures
#   make bench-v2   the cold-job comparison on crun in the cgroup v2 VM
#   make fuzz       libFuzzer on the config, manifest, schema and request parsers
#                   (FUZZ_SECONDS per target, default 60; installs clang-14)
#   make install    binaries, man pages, templates, plugins, config, systemd
#                   units (DESTDIR and PREFIX as usual; PREFIX=/usr/local)
#   make deb        build/edgecd_VERSION_ARCH.deb (debhelper, packaging/debian)
#   make clean
#
# Every target first makes sure the Debian packages are there
# (scripts/install-deps.sh, a no-op when nothing is missing).

CC      ?= gcc
PKGS    := libmicrohttpd jansson yaml-0.1 libseccomp libcgroup libsystemd uuid nettle yajl sqlite3
# libcurl's headers only: the daemon loads it when callbacks are on
# (daemon/callbacks/curlapi.h), rather than carry it and its libraries at every start.
DLPKGS  := libcurl
VERSION := 0.1.0

WARN    := -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wcast-qual \
           -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 -Wvla \
           -Wundef -Wnull-dereference -Wimplicit-fallthrough
CFLAGS  ?= -O2 -g
# Full RELRO and immediate binding, as Debian's hardening flags would give.
LDFLAGS ?= -Wl,-z,relro -Wl,-z,now
override CFLAGS += -std=gnu17 $(WARN) -D_GNU_SOURCE -DEDGECD_VERSION='"$(VERSION)"' \
           -fstack-protector-strong -D_FORTIFY_SOURCE=2 -pthread -MMD -MP
ASAN    := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

B       := build
# daemon/main.c and a folder per subsystem (README: Layout).  An include
# names another folder's header by folder (-iquote daemon), its own bare.
SRCS    := $(wildcard daemon/*.c daemon/*/*.c)
SRCS    := $(filter-out daemon/inside/%,$(SRCS))
# Objects go into one archive by name (ar) and the fuzz build finds modules
# by name: a module's name is its own across the folders.
DUPS    := $(sort $(foreach f,$(notdir $(SRCS)),$(if $(word 2,$(filter %/$(f),$(SRCS))),$(f))))
$(if $(DUPS),$(error module names must be unique across daemon/'s folders: $(DUPS)))
LIBSRCS := $(filter-out daemon/main.c,$(SRCS))
# The sandbox probe and the warm containers' gate run inside containers:
# static musl binaries, embedded in the daemon (daemon/inside/payload.S),
# built without sanitizers.
PROBE   := $(B)/inside/sandbox-probe
GATE    := $(B)/inside/warm-gate
PAYLOAD := $(B)/inside/payload.o
# daemon/http/openapi.json, the API's OpenAPI document, embedded as it is.
OPENAPI := $(B)/obj/openapi_doc.o
OBJS    := $(SRCS:daemon/%.c=$(B)/obj/%.o) $(PAYLOAD) $(OPENAPI)
LIBOBJS := $(LIBSRCS:daemon/%.c=$(B)/obj/%.o) $(PAYLOAD) $(OPENAPI)
AOBJS   := $(SRCS:daemon/%.c=$(B)/asan/%.o) $(PAYLOAD) $(OPENAPI)
ALIBOBJS:= $(LIBSRCS:daemon/%.c=$(B)/asan/%.o) $(PAYLOAD) $(OPENAPI)
# Looked up when the recipe runs (=, not :=): on a fresh machine musl-gcc
# only exists once $(DEPS_OK) has installed it, after the Makefile is read;
# a glibc static probe is 18 times the size (690 KB) and does not fit where
# the musl one does (a small state disk).
PROBE_CC = $(or $(shell command -v musl-gcc 2>/dev/null),gcc)
TESTS   := $(patsubst tests/unit/%.c,$(B)/tests/%,$(wildcard tests/unit/test-*.c))

DEPS_OK := $(B)/.deps-ok

.PHONY: all deps run check check-v2 unit integration system plugins bench bench-v2 install deb clean fuzz
all: $(B)/edgecd $(B)/edgecd-asan $(B)/edgecdctl plugins

# Installs packages only when something is missing (needs root then).
deps: $(DEPS_OK)
$(DEPS_OK): scripts/install-deps.sh
	@scripts/install-deps.sh --if-missing
	@mkdir -p $(B) && touch $@

PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) $(DLPKGS))
PKG_LIBS   = $(shell pkg-config --libs $(PKGS))

$(B)/obj/%.o: daemon/%.c | $(DEPS_OK)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -iquote daemon -c $< -o $@
$(B)/asan/%.o: daemon/%.c | $(DEPS_OK)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(ASAN) $(PKG_CFLAGS) -iquote daemon -c $< -o $@

$(PROBE): daemon/inside/sandbox-probe.c | $(DEPS_OK)
	@mkdir -p $(@D)
	$(PROBE_CC) -std=gnu17 -O2 -static -s $(WARN) -o $@ $<
$(GATE): daemon/inside/warm-gate.c | $(DEPS_OK)
	@mkdir -p $(@D)
	$(PROBE_CC) -std=gnu17 -O2 -static -s $(WARN) -o $@ $<
$(PAYLOAD): daemon/inside/payload.S $(PROBE) $(GATE)
	$(CC) -c -DSANDBOX_PROBE_PATH='"$(abspath $(PROBE))"' -DWARM_GATE_PATH='"$(abspath $(GATE))"' -o $@ $<
$(OPENAPI): daemon/http/openapi_doc.S daemon/http/openapi.json | $(DEPS_OK)
	@mkdir -p $(@D)
	$(CC) -c -DOPENAPI_PATH='"$(abspath daemon/http/openapi.json)"' -o $@ $<

$(B)/edgecd: $(OBJS)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) -lm
$(B)/edgecd-asan: $(AOBJS)
	$(CC) $(CFLAGS) $(ASAN) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) -lm
$(B)/libedgecd-asan.a: $(ALIBOBJS)
	rm -f $@ && ar rcs $@ $^

# edgecdctl, the command-line client (ctl/): libcurl and jansson only.
CTL_PKGS := libcurl jansson
CTL_OBJS := $(patsubst ctl/%.c,$(B)/ctl/%.o,$(wildcard ctl/*.c))
$(B)/ctl/%.o: ctl/%.c | $(DEPS_OK)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(shell pkg-config --cflags $(CTL_PKGS)) -c $< -o $@
$(B)/edgecdctl: $(CTL_OBJS)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(shell pkg-config --libs $(CTL_PKGS)) -lm

# Unit tests (Check) are built with ASan+UBSan against the daemon's modules.
$(B)/tests/%: tests/unit/%.c $(B)/libedgecd-asan.a | $(DEPS_OK)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(ASAN) $(PKG_CFLAGS) $(shell pkg-config --cflags check) -iquote daemon \
	  -o $@ $< $(B)/libedgecd-asan.a $(PKG_LIBS) $(shell pkg-config --libs check) -lm

plugins: | $(DEPS_OK)
	$(MAKE) -C plugins OUT=$(abspath $(B)/plugins) TEST_OUT=$(abspath $(B)/test-plugins)

run: $(B)/edgecd plugins
	$(B)/edgecd --config config/edgecd.yaml --plugins-dir $(B)/plugins \
	  --templates-dir oci-templates --state-dir $(B)/state

unit: $(TESTS)
integration: all
	EDGECD_RUNTIME="$(RUNTIME)" /usr/bin/python3 tests/integration/run.py --daemon $(B)/edgecd

# RUNTIME=/path/to/youki runs every test on that runtime (default: youki,
# which falls back to crun, then runc, on hosts without it).
check: all $(TESTS)
	@EDGECD_RUNTIME="$(RUNTIME)" tests/run.sh $(TESTS)

# The system tier alone: the daemon under a real systemd (tests/system).
system: all
	@/usr/bin/python3 tests/system/run.py

# The cgroup v2 tier: a QEMU VM (no KVM) with Debian's kernel, systemd, crun
# and runc; make check runs it too (tests/run.sh).
check-v2: all
	@tests/system/check-v2.sh

# The host's figures, then section 9 again on crun in the cgroup v2 VM
# (EDGECD_BENCH_V2=0 leaves the VM out).
bench: all
	@bench/run.sh
	@if [ "$${EDGECD_BENCH_V2:-1}" = 0 ]; then echo "bench-v2 skipped: EDGECD_BENCH_V2=0"; \
	 else tests/system/check-v2.sh --bench; fi

bench-v2: all
	@tests/system/check-v2.sh --bench

# libFuzzer targets for the parsers (clang; FUZZ_SECONDS per target, default 60).
fuzz: | $(DEPS_OK)
	@tests/fuzz/run.sh

# The binaries go to BINDIR (PREFIX/bin) and the man pages under PREFIX;
# the templates, the plugins and /etc/edgecd go where config/edgecd.yaml's
# defaults look for them whatever PREFIX is.  The service unit is written
# from packaging/edgecd.service.in with @BINDIR@ replaced, so it names the
# binary just installed.  A local install puts the units and the tmpfiles.d
# entry in /etc (the administrator's); the Debian package gives
# UNITDIR=/lib/systemd/system TMPFILESDIR=/usr/lib/tmpfiles.d.
PREFIX      ?= /usr/local
BINDIR      ?= $(PREFIX)/bin
MANDIR      ?= $(PREFIX)/share/man
UNITDIR     ?= /etc/systemd/system
TMPFILESDIR ?= /etc/tmpfiles.d
install: $(B)/edgecd $(B)/edgecdctl plugins
	install -D -m 0755 $(B)/edgecd $(DESTDIR)$(BINDIR)/edgecd
	install -D -m 0755 $(B)/edgecdctl $(DESTDIR)$(BINDIR)/edgecdctl
	install -D -m 0644 daemon/edgecd.8 $(DESTDIR)$(MANDIR)/man8/edgecd.8
	install -D -m 0644 ctl/edgecdctl.1 $(DESTDIR)$(MANDIR)/man1/edgecdctl.1
	install -d -m 0755 $(DESTDIR)/usr/share/edgecd/oci-templates $(DESTDIR)/usr/lib/edgecd/plugins
	install -m 0644 oci-templates/* $(DESTDIR)/usr/share/edgecd/oci-templates/
	cp -a $(B)/plugins/. $(DESTDIR)/usr/lib/edgecd/plugins/
	install -d -m 0755 $(DESTDIR)/etc/edgecd
	test -e $(DESTDIR)/etc/edgecd/edgecd.yaml || install -m 0644 config/edgecd.yaml $(DESTDIR)/etc/edgecd/edgecd.yaml
	install -d -m 0755 $(DESTDIR)$(UNITDIR)
	sed 's|@BINDIR@|$(BINDIR)|g' packaging/edgecd.service.in >$(DESTDIR)$(UNITDIR)/edgecd.service.tmp
	chmod 0644 $(DESTDIR)$(UNITDIR)/edgecd.service.tmp
	mv -f $(DESTDIR)$(UNITDIR)/edgecd.service.tmp $(DESTDIR)$(UNITDIR)/edgecd.service
	install -m 0644 packaging/edgecd.socket $(DESTDIR)$(UNITDIR)/edgecd.socket
	install -D -m 0644 packaging/edgecd.tmpfiles $(DESTDIR)$(TMPFILESDIR)/edgecd.conf
	install -D -m 0644 README.md $(DESTDIR)/usr/share/doc/edgecd/README.md

# The Debian package, built with debhelper from packaging/debian copied into
# a scratch tree (build/deb/), so the source tree needs no debian/.  Its
# rules install this tree's build/ (PREFIX=/usr) rather than compile again.
DEB_ARCH := $(shell dpkg --print-architecture 2>/dev/null)
DEB_DIR  := $(B)/deb/edgecd-$(VERSION)
deb: $(B)/edgecd $(B)/edgecdctl plugins
	@v=$$(dpkg-parsechangelog -l packaging/debian/changelog -S Version) && [ "$$v" = "$(VERSION)" ] || \
	  { echo "make deb: packaging/debian/changelog is at $$v, the Makefile's VERSION is $(VERSION)" >&2; exit 1; }
	rm -rf $(B)/deb
	mkdir -p $(DEB_DIR)
	cp -a packaging/debian $(DEB_DIR)/debian
	cd $(DEB_DIR) && EDGECD_SRC=$(CURDIR) dpkg-buildpackage -b --no-sign >../build.log 2>&1 || \
	  { tail -n 40 $(B)/deb/build.log >&2; echo "make deb: dpkg-buildpackage failed, see $(B)/deb/build.log" >&2; exit 1; }
	mv -f $(B)/deb/edgecd_$(VERSION)_$(DEB_ARCH).deb $(B)/
	rm -rf $(DEB_DIR)
	@echo $(B)/edgecd_$(VERSION)_$(DEB_ARCH).deb

clean:
	rm -rf $(B)

-include $(OBJS:.o=.d) $(AOBJS:.o=.d) $(TESTS:=.d) $(CTL_OBJS:.o=.d)
