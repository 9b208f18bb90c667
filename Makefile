# Builds the BPF object (CO-RE, once, at build time: nothing compiles at run time),
# the Node-API addon and the TypeScript.
CLANG ?= clang
LLVM_STRIP ?= llvm-strip
LLVM_OBJCOPY ?= llvm-objcopy
ARCH_INCLUDE := /usr/include/$(shell gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
BPF_CFLAGS := -target bpf -g -O2 -Wall -Werror -D__TARGET_ARCH_x86 -I$(ARCH_INCLUDE) -Ibpf

BPF_OBJS := dist/bpf/tracepkt.bpf.o dist/bpf/probes.bpf.o dist/bpf/mangle.bpf.o dist/bench/floor.bpf.o \
	dist/bpf/tracepkt.compat.bpf.o dist/bpf/mangle.compat.bpf.o dist/test/bpf/drop-icmp.bpf.o \
	dist/test/bpf/fentry-witness.bpf.o

.PHONY: all bpf native ts clean
all: bpf native ts

bpf: $(BPF_OBJS)

# The TypeScript view of each object (its BTF and ELF symbols), generated, never edited: tsc compiles it.
GENERATED := src/bpf/generated/tracepkt.ts src/bpf/generated/mangle.ts src/bpf/generated/probes.ts

src/bpf/generated/%.ts: dist/bpf/%.bpf.o tools/gen-bindings.js
	@mkdir -p src/bpf/generated
	node tools/gen-bindings.js $< > $@.tmp && mv $@.tmp $@

# Shipped without DWARF and without BTF line info (tools/drop-line-info.js): both only serve reading
# verifier logs, and they were more than half of the tracing object, read at every start, the line info
# checked by the kernel at every load. BTF, function info and CO-RE relocations stay.
# `make LINE_INFO=1` keeps the line info (verifier logs with the C source); the stamp file names which
# build the objects are, so that switching rebuilds them (and the tests know which to expect).
LINE_INFO_STAMP := dist/bpf/.line-info-$(if $(filter 1,$(LINE_INFO)),kept,dropped)
$(LINE_INFO_STAMP):
	@mkdir -p dist/bpf && rm -f dist/bpf/.line-info-* && touch $@

define ship_bpf
	$(LLVM_STRIP) -g $@.debug -o $@.tmp && rm $@.debug
	$(if $(filter 1,$(LINE_INFO)),,$(LLVM_OBJCOPY) --dump-section .BTF.ext=$@.ext $@.tmp && node tools/drop-line-info.js $@.ext && \
	  $(LLVM_OBJCOPY) --remove-section .rel.BTF.ext --update-section .BTF.ext=$@.ext $@.tmp || { rm -f $@.tmp $@.ext; exit 1; })
	rm -f $@.ext && mv $@.tmp $@
endef

# For kernels whose verifier refuses pointer arguments of global functions (before 5.12): bpf/subprog.h.
dist/bpf/%.compat.bpf.o: bpf/%.bpf.c bpf/*.h tools/drop-line-info.js $(LINE_INFO_STAMP)
	@mkdir -p dist/bpf
	$(CLANG) $(BPF_CFLAGS) -DTP_COMPAT -c $< -o $@.debug
	$(ship_bpf)

dist/bpf/%.bpf.o: bpf/%.bpf.c bpf/*.h tools/drop-line-info.js $(LINE_INFO_STAMP)
	@mkdir -p dist/bpf
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@.debug
	$(ship_bpf)

# The benchmark's floor: empty programs on tracepkt's hooks.
dist/bench/%.bpf.o: bench/%.bpf.c
	@mkdir -p dist/bench
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@

# Programs of someone else's that the tests attach with ip and tc.
dist/test/bpf/%.bpf.o: test/bpf/%.bpf.c
	@mkdir -p dist/test/bpf
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@

# Node's own headers, from the installed Node: node-gyp would otherwise try to download them.
NODEDIR ?= $(shell node -p "require('path').resolve(process.execPath, '../..')")

native: build/Release/bpf_addon.node

build/Release/bpf_addon.node: native/*.c native/*.h binding.gyp
	npx --no-install node-gyp rebuild --silent --nodedir=$(NODEDIR)

ts: $(GENERATED)
	npx --no-install tsc -p .

clean:
	rm -rf build dist src/bpf/generated
