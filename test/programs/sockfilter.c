/* Socket filters (SO_ATTACH_FILTER, classic BPF):
 *  - a UDP socket on 127.0.0.1 whose 7-instruction filter takes only datagrams
 *    whose first byte is 'A' (and, truncated to 3 bytes, those starting 'T');
 *  - a unix datagram pair whose receiving end holds a datagram "B1" queued
 *    before its filter went on, a filter that drops datagrams starting 'B': the
 *    queued one must survive (the filter must go on only after the queue is back).
 * After restore: SO_GET_FILTER gives the same program, the UDP socket drops
 * what the filter drops and takes what it takes, the unix end reads "B1", then
 * drops a new "B2" and takes "A2".
 * argv[2] "lock": the UDP filter is also locked (SO_LOCK_FILTER), which cryo
 * must refuse; "ebpf": an eBPF program (SO_ATTACH_BPF) instead, likewise.
 * SIGUSR2: the UDP socket's filter is detached (FAIL). */
#include "common.h"
#include <arpa/inet.h>
#include <linux/bpf.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#define NELEMS(a) ((int)(sizeof(a) / sizeof((a)[0])))

#ifndef SO_GET_FILTER
#define SO_GET_FILTER SO_ATTACH_FILTER
#endif
#ifndef SO_LOCK_FILTER
#define SO_LOCK_FILTER 44
#endif
#ifndef SO_ATTACH_BPF
#define SO_ATTACH_BPF 50
#endif

/* UDP: skb data starts at the UDP header, the payload at byte 8. */
static struct sock_filter udp_prog[] = {
	BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 8),
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 'A', 4, 0),
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 'T', 1, 0),
	BPF_STMT(BPF_RET | BPF_K, 0),
	BPF_STMT(BPF_RET | BPF_K, 8 + 3),
	BPF_STMT(BPF_RET | BPF_K, 0),
	BPF_STMT(BPF_RET | BPF_K, 0xffff),
};

/* Unix datagrams: the payload at byte 0; drop those starting 'B'. */
static struct sock_filter unix_prog[] = {
	BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 0),
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 'B', 0, 1),
	BPF_STMT(BPF_RET | BPF_K, 0),
	BPF_STMT(BPF_RET | BPF_K, 0xffff),
};

static void attach(int fd, struct sock_filter *f, int n)
{
	struct sock_fprog p = { .len = n, .filter = f };
	MUST(setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &p, sizeof(p)) == 0);
}

static void check_prog(int fd, struct sock_filter *want, int n, const char *what)
{
	struct sock_filter got[64];
	socklen_t len = 0;

	if (getsockopt(fd, SOL_SOCKET, SO_GET_FILTER, NULL, &len)) {
		failf("%s: SO_GET_FILTER: %s", what, strerror(errno));
		return;
	}
	if ((int)len != n) {
		failf("%s: filter of %u instructions, want %d", what, len, n);
		return;
	}
	memset(got, 0, sizeof(got));
	if (getsockopt(fd, SOL_SOCKET, SO_GET_FILTER, got, &len) || memcmp(got, want, n * sizeof(*want)))
		failf("%s: the filter's instructions differ", what);
}

/* Send `msg` to the socket from itself; what recv then gets (nonblocking), or -1. */
static int udp_roundtrip(int fd, const char *msg, char *buf, int size)
{
	struct sockaddr_in a;
	socklen_t l = sizeof(a);

	MUST(getsockname(fd, (struct sockaddr *)&a, &l) == 0);
	if (sendto(fd, msg, strlen(msg), 0, (struct sockaddr *)&a, l) != (ssize_t)strlen(msg))
		return -2;
	usleep(20000);
	return recv(fd, buf, size, MSG_DONTWAIT);
}

static int ebpf_prog(void)
{
	struct bpf_insn insns[] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = 0xffff },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	union bpf_attr attr;

	memset(&attr, 0, sizeof(attr));
	attr.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
	attr.insn_cnt = 2;
	attr.insns = (uint64_t)(uintptr_t)insns;
	attr.license = (uint64_t)(uintptr_t)"GPL";
	return syscall(SYS_bpf, BPF_PROG_LOAD, &attr, sizeof(attr));
}

int main(int argc, char **argv)
{
	const char *mode = argc > 2 ? argv[2] : "";
	struct sockaddr_in a = { .sin_family = AF_INET };
	int u, sp[2], one = 1, n;
	char buf[64];

	prog_init();
	u = socket(AF_INET, SOCK_DGRAM, 0);
	MUST(u >= 0);
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	MUST(bind(u, (struct sockaddr *)&a, sizeof(a)) == 0);
	if (!strcmp(mode, "ebpf")) {
		int pfd = ebpf_prog();
		MUST(pfd >= 0);
		MUST(setsockopt(u, SOL_SOCKET, SO_ATTACH_BPF, &pfd, sizeof(pfd)) == 0);
	} else {
		attach(u, udp_prog, NELEMS(udp_prog));
	}
	if (!strcmp(mode, "lock"))
		MUST(setsockopt(u, SOL_SOCKET, SO_LOCK_FILTER, &one, sizeof(one)) == 0);

	MUST(socketpair(AF_UNIX, SOCK_DGRAM, 0, sp) == 0);
	MUST(send(sp[0], "B1", 2, 0) == 2);
	attach(sp[1], unix_prog, NELEMS(unix_prog));
	prog_ready();

	if (wait_for_signal())
		MUST(setsockopt(u, SOL_SOCKET, SO_DETACH_FILTER, &one, sizeof(one)) == 0);

	check_prog(u, udp_prog, NELEMS(udp_prog), "udp");
	check_prog(sp[1], unix_prog, NELEMS(unix_prog), "unix");
	if ((n = udp_roundtrip(u, "Xray", buf, sizeof(buf))) != -1)
		failf("udp: a datagram the filter drops came through (%d)", n);
	if ((n = udp_roundtrip(u, "Apple", buf, sizeof(buf))) != 5 || memcmp(buf, "Apple", 5))
		failf("udp: a datagram the filter takes did not come (%d)", n);
	if ((n = udp_roundtrip(u, "Tomato", buf, sizeof(buf))) != 3 || memcmp(buf, "Tom", 3))
		failf("udp: the filter's truncation did not hold (%d bytes)", n);
	if ((n = recv(sp[1], buf, sizeof(buf), MSG_DONTWAIT)) != 2 || memcmp(buf, "B1", 2))
		failf("unix: the datagram queued before the filter is gone (%d)", n);
	MUST(send(sp[0], "B2", 2, 0) == 2);
	MUST(send(sp[0], "A2", 2, 0) == 2);
	if ((n = recv(sp[1], buf, sizeof(buf), MSG_DONTWAIT)) != 2 || memcmp(buf, "A2", 2))
		failf("unix: the filter did not drop B2 and take A2 (%d)", n);
	return prog_finish();
}
