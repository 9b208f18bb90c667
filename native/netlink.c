// SPDX-License-Identifier: MIT
/*
 * Netlink sockets as watches: nftables trace messages and the answers to
 * requests arrive as batches on the event loop, one datagram per record;
 * nothing here waits for the kernel.
 */
#include "addon.h"
#include <linux/netlink.h>
#include <sys/socket.h>
#include <unistd.h>

struct nl {
	struct watch w; /* first: a socket is a watch */
	int fd;
	char buf[256 * 1024];
};

static int nl_drain(struct watch *w)
{
	struct nl *s = (struct nl *)w;
	int n = 0;

	for (;;) {
		struct sockaddr_nl from;
		socklen_t from_len = sizeof(from);
		ssize_t got = recvfrom(s->fd, s->buf, sizeof(s->buf), MSG_DONTWAIT, (struct sockaddr *)&from, &from_len);

		if (got < 0) {
			if (errno == EINTR)
				continue;
			if (errno == ENOBUFS) {
				/* The kernel dropped messages: tell JavaScript with an empty record. */
				if (batch_add(&w->batch, s->buf, 0))
					w->batch.lost++;
				else
					n++;
				continue;
			}
			break; /* EAGAIN: drained */
		}
		/* Only the kernel speaks here: a process of the traced namespace could send to this socket. */
		if (from_len < sizeof(from) || from.nl_family != AF_NETLINK || from.nl_pid != 0)
			continue;
		if (batch_add(&w->batch, s->buf, got))
			w->batch.lost++; /* a datagram no batch could hold: counted, and the rest go on */
		else
			n++;
	}
	return n;
}

static void nl_release(struct watch *w)
{
	struct nl *s = (struct nl *)w;

	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
}

/*
 * netlinkOpen(protocol, groups[], onBatch) -> socket, in the calling
 * thread's namespace. Each datagram is one record of the batch (a zero-length
 * record means the kernel dropped messages: ENOBUFS).
 */
static napi_value js_netlink_open(napi_env env, napi_callback_info info)
{
	uint32_t protocol, n_groups, i;
	struct sockaddr_nl addr = { .nl_family = AF_NETLINK };
	struct nl *s;
	int rcvbuf = 8 << 20;
	ARGS(3);

	if (napi_get_value_uint32(env, argv[0], &protocol) != napi_ok ||
	    napi_get_array_length(env, argv[1], &n_groups) != napi_ok)
		return throw_type(env, "protocol must be a number, groups an array");
	s = calloc(1, sizeof(*s));
	if (!s)
		return throw_errno(env, "calloc", ENOMEM, NULL);
	s->fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, protocol);
	if (s->fd < 0 || bind(s->fd, (struct sockaddr *)&addr, sizeof(addr))) {
		int err = errno;

		nl_release(&s->w);
		free(s);
		return throw_errno(env, "netlink socket", err, NULL);
	}
	/* Trace bursts must not overflow the socket: ask for a large buffer. */
	if (setsockopt(s->fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)))
		setsockopt(s->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	for (i = 0; i < n_groups; i++) {
		napi_value v = NULL;
		uint32_t group;
		int err = EINVAL;

		if (napi_get_element(env, argv[1], i, &v) == napi_ok && napi_get_value_uint32(env, v, &group) == napi_ok)
			err = setsockopt(s->fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &group, sizeof(group)) ? errno : 0;
		if (err) {

			nl_release(&s->w);
			free(s);
			return throw_errno(env, "NETLINK_ADD_MEMBERSHIP", err, NULL);
		}
	}
	s->w.drain = nl_drain;
	s->w.release = nl_release;
	return watch_start(env, &s->w, s->fd, argv[2], "tracepkt:netlink", &NETLINK_TAG);
}

/* netlinkSend(socket, buffer): one datagram to the kernel */
static napi_value js_netlink_send(napi_env env, napi_callback_info info)
{
	struct nl *s;
	void *data;
	size_t size;
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
	ARGS(2);

	if (!(s = (struct nl *)get_watch(env, argv[0], &NETLINK_TAG)))
		return NULL;
	if (s->w.closed)
		return throw_errno(env, "netlink send", EBADF, NULL);
	if (napi_get_buffer_info(env, argv[1], &data, &size) != napi_ok)
		return throw_type(env, "message must be a Buffer");
	if (sendto(s->fd, data, size, 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0)
		return throw_errno(env, "netlink send", errno, NULL);
	return NULL;
}

const struct addon_fn netlink_fns[] = {
	{ "netlinkOpen", js_netlink_open },
	{ "netlinkSend", js_netlink_send },
	{ NULL, NULL },
};
