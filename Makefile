# lgr — Loggregator as small Unix programs.
#
#   make          build every program into bin/
#   make check    unit tests (ASan+UBSan), fuzz replay and short fuzz runs,
#                 bats suites, man page lint; ends with "N passed, N failed"
#   make run      a live demo of envelopes flowing through a pipeline
#   make bench    throughput figures beside a reference measured in the same run
#   make fuzz     every fuzz target for FUZZ_TIME seconds (libFuzzer, clang)
#   make install  PREFIX=/usr/local DESTDIR=

PREFIX ?= /usr/local
CC ?= cc
CFLAGS ?= -O2 -g
WARN = -Wall -Wextra -Werror -Wvla -Wshadow -Wno-missing-field-initializers
CPPFLAGS += -D_GNU_SOURCE -Isrc/lib -Ibuild/gen
LDLIBS = -lprotobuf-c -ljansson -luv -lnghttp2 -lmicrohttpd -lwslay -lcurl \
	-lssl -lcrypto -lpthread -lm
SANITIZE = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CC ?= clang
FUZZ_TIME ?= 60
FUZZ_SHORT ?= 5

-include config.mak

PROGS = lgr-bindings lgr-cache lgr-cat lgr-diode lgr-emit lgr-recv lgr-route lgr-ws
BINS = $(PROGS:%=bin/%)

PROTOS = $(wildcard share/proto/*/*.proto)
GEN_C = $(PROTOS:share/proto/%.proto=build/gen/%.pb-c.c)
GEN_H = $(GEN_C:.c=.h)
LIB_SRC = $(wildcard src/lib/*.c)
LIB_OBJ = $(LIB_SRC:%.c=build/obj/%.o) $(GEN_C:build/gen/%.c=build/obj/gen/%.o)
ASAN_LIB_OBJ = $(LIB_OBJ:build/obj/%=build/asan/%)

UNIT_SRC = $(wildcard t/unit/test_*.c)
UNIT_BIN = $(UNIT_SRC:t/unit/%.c=build/asan/t/%)
FUZZ_SRC = $(wildcard t/fuzz/fuzz_*.c)
FUZZ_NAMES = $(FUZZ_SRC:t/fuzz/fuzz_%.c=%)
REPLAY_BIN = $(FUZZ_NAMES:%=build/asan/t/replay_%)
FUZZ_BIN = $(FUZZ_NAMES:%=build/fuzz/fuzz_%)
MANS = $(wildcard share/man/*.[18])

.PHONY: all deps check unit run bench fuzz install clean
.SECONDARY:

all: deps $(BINS)

deps:
	@sh share/deps

# Generated protobuf-c code, never committed.
build/gen/%.pb-c.c build/gen/%.pb-c.h: share/proto/%.proto
	@mkdir -p build/gen
	protoc-c --c_out=build/gen -Ishare/proto $<

build/obj/gen/%.o: build/gen/%.c $(GEN_H)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -Wall -MMD -c -o $@ $<

build/obj/%.o: %.c $(GEN_H)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) -MMD -c -o $@ $<

build/liblgr.a: $(LIB_OBJ)
	rm -f $@ && ar rcs $@ $^

.SECONDEXPANSION:
bin/lgr-%: $$(addprefix build/obj/,$$(addsuffix .o,$$(basename $$(wildcard src/lgr-$$*/*.c)))) build/liblgr.a
	@mkdir -p bin
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

# Sanitizer builds of the library, unit tests and fuzz replays.
build/asan/gen/%.o: build/gen/%.c $(GEN_H)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -O1 -g $(SANITIZE) -MMD -c -o $@ $<

build/asan/%.o: %.c $(GEN_H)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -O1 -g $(WARN) $(SANITIZE) -MMD -c -o $@ $<

build/asan/liblgr.a: $(ASAN_LIB_OBJ)
	rm -f $@ && ar rcs $@ $^

build/asan/t/test_%: build/asan/t/unit/test_%.o build/asan/liblgr.a
	@mkdir -p $(@D)
	$(CC) $(SANITIZE) -o $@ $^ $(LDLIBS)

build/asan/t/replay_%: build/asan/t/fuzz/fuzz_%.o build/asan/t/fuzz/replay.o build/asan/liblgr.a
	@mkdir -p $(@D)
	$(CC) $(SANITIZE) -o $@ $^ $(LDLIBS)

# Test drivers the bats suites run, built with the sanitizers too.
build/asan/t/grpccli_send: build/asan/t/grpccli-peer/send.o build/asan/liblgr.a
	@mkdir -p $(@D)
	$(CC) $(SANITIZE) -o $@ $^ $(LDLIBS)

# Any other test driver: t/drivers/NAME.c becomes build/asan/t/NAME.
DRIVER_SRC = $(wildcard t/drivers/*.c)
DRIVER_BIN = $(DRIVER_SRC:t/drivers/%.c=build/asan/t/%)

build/asan/t/%: build/asan/t/drivers/%.o build/asan/liblgr.a
	@mkdir -p $(@D)
	$(CC) $(SANITIZE) -o $@ $^ $(LDLIBS)

# libFuzzer builds need clang. The library is instrumented once, into
# its own archive, and each target links against it.
FUZZ_FLAGS = -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_LIB_OBJ = $(LIB_OBJ:build/obj/%=build/fuzz/%)

build/fuzz/gen/%.o: build/gen/%.c $(GEN_H)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

build/fuzz/%.o: %.c $(GEN_H)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_FLAGS) $(WARN) -fsanitize=fuzzer-no-link -MMD -c -o $@ $<

build/fuzz/liblgr.a: $(FUZZ_LIB_OBJ)
	rm -f $@ && ar rcs $@ $^

build/fuzz/fuzz_%: build/fuzz/t/fuzz/fuzz_%.o build/fuzz/liblgr.a
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)

unit: $(UNIT_BIN) $(REPLAY_BIN) build/asan/t/grpccli_send $(DRIVER_BIN)

check: all unit $(FUZZ_BIN)
	@FUZZ_SHORT=$(FUZZ_SHORT) bash t/run

run: all
	@sh share/demo

bench: all
	@bash t/bench/run

fuzz: deps $(FUZZ_BIN)
	@for f in $(FUZZ_NAMES); do \
		mkdir -p t/fuzz/corpus/$$f build/fuzz/new_$$f; \
		echo "fuzz: $$f for $(FUZZ_TIME)s"; \
		build/fuzz/fuzz_$$f -max_total_time=$(FUZZ_TIME) -max_len=4096 \
		    build/fuzz/new_$$f t/fuzz/corpus/$$f || exit 1; \
	done

ROLES = $(filter-out $(BINS),$(wildcard bin/*))

install: all
	mkdir -p $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 \
	    $(DESTDIR)$(PREFIX)/share/man/man8 $(DESTDIR)$(PREFIX)/share/lgr
	install -m 755 $(BINS) $(ROLES) share/lgr-certs $(DESTDIR)$(PREFIX)/bin/
	for m in $(MANS); do \
		install -m 644 $$m $(DESTDIR)$(PREFIX)/share/man/man$${m##*.}/; \
	done
	install -m 644 share/ws-role.sh $(DESTDIR)$(PREFIX)/share/lgr/
	if [ -d share/sv ]; then cp -R share/sv $(DESTDIR)$(PREFIX)/share/lgr/; fi

clean:
	rm -rf build $(BINS)

-include $(shell find build -name '*.d' 2>/dev/null)
