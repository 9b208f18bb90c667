// SPDX-License-Identifier: MIT
#include "addon.h"
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

/*
 * BPF netfilter links and netlink sockets belong to the network namespace of
 * the thread that creates them, so JavaScript enters a namespace, creates
 * them, and leaves. Only the calling (main) thread moves.
 */
static int home_netns = -1;

/* enterNetns(path): moves the calling thread into the namespace at path */
static napi_value js_enter_netns(napi_env env, napi_callback_info info)
{
	char path[4096];
	int fd, err;
	ARGS(1);

	if (!get_string(env, argv[0], path, sizeof(path)))
		return throw_type(env, "bad namespace path");
	if (home_netns < 0) {
		home_netns = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
		if (home_netns < 0)
			return throw_errno(env, "open /proc/thread-self/ns/net", errno, NULL);
	}
	/* O_NONBLOCK: a FIFO given as a namespace must not block the main thread (Ctrl-C would wait); namespace files ignore it */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return throw_errno(env, "open namespace", errno, NULL);
	err = setns(fd, CLONE_NEWNET) ? errno : 0;
	close(fd);
	return err ? throw_errno(env, "setns", err, NULL) : NULL;
}

/* leaveNetns(): back to the namespace the thread was in before enterNetns */
static napi_value js_leave_netns(napi_env env, napi_callback_info info)
{
	if (home_netns >= 0 && setns(home_netns, CLONE_NEWNET))
		return throw_errno(env, "setns back", errno, NULL);
	return NULL;
}

const struct addon_fn netns_fns[] = {
	{ "enterNetns", js_enter_netns },
	{ "leaveNetns", js_leave_netns },
	{ NULL, NULL },
};
