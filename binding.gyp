{
  "targets": [
    {
      "target_name": "bpf_addon",
      "sources": ["native/bpf_addon.c"],
      "cflags": ["-Wall", "-Wno-unused-parameter", "-O2"],
      "libraries": ["-lbpf", "-lelf", "-lz"]
    }
  ]
}
