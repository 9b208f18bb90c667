{
  "targets": [
    {
      "target_name": "bpf_addon",
      "sources": [
        "native/addon.c",
        "native/errors.c",
        "native/object.c",
        "native/links.c",
        "native/watch.c",
        "native/ring.c",
        "native/netlink.c",
        "native/netns.c",
        "native/programs.c",
        "native/pcap.c"
      ],
      "cflags": ["-Wall", "-Wno-unused-parameter", "-O2"],
      "libraries": ["-lbpf", "-lelf", "-lz", "-lpcap"]
    }
  ]
}
