/* Netlink sockets, in a network namespace of the task's own (nothing there
 * sends notifications):
 *  - a NETLINK_ROUTE socket bound to port id pid+100000 and group 1
 *    (RTMGRP_LINK), also in group 33 (NETLINK_ADD_MEMBERSHIP: past what
 *    sockaddr_nl can name), O_NONBLOCK;
 *  - two NETLINK_USERSOCK sockets: one bound to port id pid+200000, the other
 *    connected to it (and so bound by the kernel to a port id of its choice);
 *  - an unbound NETLINK_GENERIC socket, and a SOCK_DGRAM one (CRIU's images
 *    hold only SOCK_RAW; cryo keeps the type in a field of its own).
 * After restore: port ids, groups, peer and flags are as they were; the route
 * socket answers an RTM_GETLINK dump, and the connected socket's message
 * reaches its peer.
 * argv[2] "queued": a message is left unread in the bound USERSOCK socket;
 * "extack": NETLINK_EXT_ACK is set on the route socket: both refused.
 * SIGUSR2: the route socket leaves group 1 (FAIL). */
#include "common.h"
#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sched.h>
#include <sys/socket.h>

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif

static struct sockaddr_nl nl(unsigned pid, unsigned groups)
{
	struct sockaddr_nl a = { .nl_family = AF_NETLINK, .nl_pid = pid, .nl_groups = groups };
	return a;
}

static struct sockaddr_nl name_of(int fd, int peer)
{
	struct sockaddr_nl a = { 0 };
	socklen_t l = sizeof(a);
	if (peer ? getpeername(fd, (struct sockaddr *)&a, &l) : getsockname(fd, (struct sockaddr *)&a, &l))
		a.nl_family = 0;
	return a;
}

static int in_group(int fd, int group)
{
	unsigned groups[8] = { 0 };
	socklen_t l = sizeof(groups);
	if (getsockopt(fd, SOL_NETLINK, NETLINK_LIST_MEMBERSHIPS, groups, &l))
		return -1;
	return (groups[(group - 1) / 32] >> ((group - 1) % 32)) & 1;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 2 ? argv[2] : "";
	unsigned pid = getpid();
	struct sockaddr_nl a;
	struct {
		struct nlmsghdr h;
		struct rtgenmsg g;
	} req = { .h = { .nlmsg_len = sizeof(req), .nlmsg_type = RTM_GETLINK, .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP, .nlmsg_seq = 7 }, .g = { .rtgen_family = AF_UNSPEC } };
	char buf[8192];
	int rt, srv, cli, gen, dgram, g = 33, one = 1, n;
	unsigned cli_port;

	prog_init();
	MUST(unshare(CLONE_NEWNET) == 0);

	MUST((rt = socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK, NETLINK_ROUTE)) >= 0);
	a = nl(pid + 100000, RTMGRP_LINK);
	MUST(bind(rt, (struct sockaddr *)&a, sizeof(a)) == 0);
	MUST(setsockopt(rt, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &g, sizeof(g)) == 0);

	MUST((srv = socket(AF_NETLINK, SOCK_RAW, NETLINK_USERSOCK)) >= 0);
	a = nl(pid + 200000, 0);
	MUST(bind(srv, (struct sockaddr *)&a, sizeof(a)) == 0);
	MUST((cli = socket(AF_NETLINK, SOCK_RAW, NETLINK_USERSOCK)) >= 0);
	MUST(connect(cli, (struct sockaddr *)&a, sizeof(a)) == 0);
	cli_port = name_of(cli, 0).nl_pid;
	MUST(cli_port != 0);

	MUST((gen = socket(AF_NETLINK, SOCK_RAW, NETLINK_GENERIC)) >= 0);
	MUST((dgram = socket(AF_NETLINK, SOCK_DGRAM, NETLINK_GENERIC)) >= 0);

	if (!strcmp(mode, "queued"))
		MUST(send(cli, "hello", 5, 0) == 5);
	if (!strcmp(mode, "extack"))
		MUST(setsockopt(rt, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one)) == 0);
	prog_ready();

	if (wait_for_signal()) {
		g = 1;
		MUST(setsockopt(rt, SOL_NETLINK, NETLINK_DROP_MEMBERSHIP, &g, sizeof(g)) == 0);
	}

	a = name_of(rt, 0);
	if (a.nl_pid != pid + 100000)
		failf("route: port id %u, want %u", a.nl_pid, pid + 100000);
	if (in_group(rt, 1) != 1 || in_group(rt, 33) != 1 || in_group(rt, 2) != 0)
		failf("route: groups 1, 33, 2: %d %d %d, want 1 1 0", in_group(rt, 1), in_group(rt, 33), in_group(rt, 2));
	if (!(fcntl(rt, F_GETFL) & O_NONBLOCK))
		failf("route: O_NONBLOCK is gone");
	if (send(rt, &req, sizeof(req), 0) != sizeof(req))
		failf("route: cannot send: %s", strerror(errno));
	usleep(20000);
	n = recv(rt, buf, sizeof(buf), 0);
	if (n < (int)sizeof(struct nlmsghdr) || ((struct nlmsghdr *)buf)->nlmsg_seq != 7 || ((struct nlmsghdr *)buf)->nlmsg_type != RTM_NEWLINK)
		failf("route: no answer to RTM_GETLINK (%d: %s)", n, strerror(errno));

	if (name_of(srv, 0).nl_pid != pid + 200000)
		failf("usersock: port id %u, want %u", name_of(srv, 0).nl_pid, pid + 200000);
	if (name_of(cli, 0).nl_pid != cli_port)
		failf("usersock client: port id %u, want %u", name_of(cli, 0).nl_pid, cli_port);
	if (name_of(cli, 1).nl_pid != pid + 200000)
		failf("usersock client: peer %u, want %u", name_of(cli, 1).nl_pid, pid + 200000);
	if (send(cli, "hello", 5, 0) != 5)
		failf("usersock client: cannot send: %s", strerror(errno));
	else if ((n = recv(srv, buf, sizeof(buf), MSG_DONTWAIT)) != 5 || memcmp(buf, "hello", 5))
		failf("usersock: the client's message did not come (%d)", n);

	if (name_of(gen, 0).nl_pid != 0)
		failf("generic: bound to %u", name_of(gen, 0).nl_pid);
	int type = 0;
	socklen_t tl = sizeof(type);
	MUST(getsockopt(gen, SOL_SOCKET, SO_TYPE, &type, &tl) == 0);
	if (type != SOCK_RAW)
		failf("generic: type %d, want SOCK_RAW", type);
	MUST(getsockopt(dgram, SOL_SOCKET, SO_TYPE, &type, &tl) == 0);
	if (type != SOCK_DGRAM)
		failf("generic dgram: type %d, want SOCK_DGRAM", type);
	return prog_finish();
}
