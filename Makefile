# Builds the BPF object (CO-RE, once, at build time: nothing compiles at run time),
# the Node-API addon and the TypeScript.
CLANG ?= clang
LLVM_STRIP ?= llvm-strip
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

# For kernels whose verifier refuses pointer arguments of global functions (before 5.12): bpf/subprog.h.
# Shipped without DWARF (a quarter of the file, read at every start): BTF and its line info stay.
dist/bpf/%.compat.bpf.o: bpf/%.bpf.c bpf/*.h
	@mkdir -p dist/bpf
	$(CLANG) $(BPF_CFLAGS) -DTP_COMPAT -c $< -o $@.debug
	$(LLVM_STRIP) -g $@.debug -o $@ && rm $@.debug

dist/bpf/%.bpf.o: bpf/%.bpf.c bpf/*.h
	@mkdir -p dist/bpf
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@.debug
	$(LLVM_STRIP) -g $@.debug -o $@ && rm $@.debug

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
