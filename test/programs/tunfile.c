/*
 * tunfile: a task in a network namespace of its own (unshare(CLONE_NEWNET))
 * holding tun files, the devices not persistent (they live as long as a file
 * holds them):
 *   - a: attached to cryo-tun1 (tun, no packet info), up, 10.77.0.1/24, send
 *     buffer 65536;
 *   - b1, b2: the two queues of cryo-mq0 (tap, no packet info, multi-queue),
 *     b2 detached (TUNSETQUEUE IFF_DETACH_QUEUE);
 *   - c: /dev/net/tun opened, attached to nothing.
 * On SIGUSR1 it checks each file's device and queue state (TUNGETIFF), that
 * neither device is persistent (ip -d), that a datagram sent to 10.77.0.2 comes
 * out of a as an IPv4 packet to that address, and that closing a and the two
 * queues makes the devices go; PASS. SIGUSR2: cryo-tun1 is made persistent first.
 * Argument "queued": a datagram is left unread on a (the dump must refuse it).
 */
#define _GNU_SOURCE
#include "common.h"
#include "netsetup.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

static int tun_attach(const char *name, int flags)
{
	struct ifreq ifr = { 0 };
	int fd = open("/dev/net/tun", O_RDWR);

	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	ifr.ifr_flags = flags;
	if (fd < 0 || ioctl(fd, TUNSETIFF, &ifr)) {
		fprintf(stderr, "setup: TUNSETIFF %s: %s\n", name, strerror(errno));
		exit(2);
	}
	return fd;
}

/* TUNGETIFF: the device's name and the file's flags; 0 and no name when attached to none. */
static int get_iff(int fd, char *name)
{
	struct ifreq ifr = { 0 };
	if (ioctl(fd, TUNGETIFF, &ifr)) {
		if (errno != EBADFD)
			failf("TUNGETIFF: %s", strerror(errno));
		name[0] = 0;
		return 0;
	}
	snprintf(name, IFNAMSIZ, "%s", ifr.ifr_name);
	return ifr.ifr_flags;
}

static void send_probe(void)
{
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(9) };
	int s = socket(AF_INET, SOCK_DGRAM, 0);
	inet_pton(AF_INET, "10.77.0.2", &to.sin_addr);
	MUST(s >= 0 && sendto(s, "probe", 5, 0, (struct sockaddr *)&to, sizeof(to)) == 5);
	close(s);
}

int main(int argc, char **argv)
{
	int queued = argc > 2 && !strcmp(argv[2], "queued");
	char name[IFNAMSIZ];
	int a, b1, b2, c, fl;

	prog_init();
	if (unshare(CLONE_NEWNET)) {
		perror("unshare");
		return 2;
	}
	sh("ip link set lo up");
	a = tun_attach("cryo-tun1", IFF_TUN | IFF_NO_PI);
	sh("ip addr add 10.77.0.1/24 dev cryo-tun1 && ip link set cryo-tun1 up");
	{
		int sndbuf = 65536;
		MUST(ioctl(a, TUNSETSNDBUF, &sndbuf) == 0);
	}
	b1 = tun_attach("cryo-mq0", IFF_TAP | IFF_NO_PI | IFF_MULTI_QUEUE);
	b2 = tun_attach("cryo-mq0", IFF_TAP | IFF_NO_PI | IFF_MULTI_QUEUE);
	{
		struct ifreq ifr = { .ifr_flags = IFF_DETACH_QUEUE };
		MUST(ioctl(b2, TUNSETQUEUE, &ifr) == 0);
	}
	c = open("/dev/net/tun", O_RDWR | O_NONBLOCK);
	MUST(c >= 0);
	/* Whatever the kernel sent out of cryo-tun1 on its own (IPv6 router solicitations...) is read first. */
	MUST(fcntl(a, F_SETFL, O_NONBLOCK) == 0);
	usleep(200000);
	for (char buf[2048]; read(a, buf, sizeof(buf)) > 0;)
		;
	if (queued) {
		send_probe();
		usleep(100000);
	}
	prog_ready();

	if (wait_for_signal()) {
		int one = 1;
		MUST(ioctl(a, TUNSETPERSIST, one) == 0);
	}

	fl = get_iff(a, name);
	if (strcmp(name, "cryo-tun1") || !(fl & IFF_TUN))
		failf("a: attached to \"%s\" (flags %#x), not the tun cryo-tun1", name, fl);
	{
		int sndbuf = 0;
		if (ioctl(a, TUNGETSNDBUF, &sndbuf) || sndbuf != 65536)
			failf("a: send buffer %d, want 65536", sndbuf);
	}
	fl = get_iff(b1, name);
	if (strcmp(name, "cryo-mq0") || !(fl & IFF_TAP) || !(fl & IFF_MULTI_QUEUE) || (fl & IFF_DETACH_QUEUE))
		failf("b1: attached to \"%s\" (flags %#x), not an attached queue of the tap cryo-mq0", name, fl);
	fl = get_iff(b2, name);
	if (strcmp(name, "cryo-mq0") || !(fl & IFF_DETACH_QUEUE))
		failf("b2: attached to \"%s\" (flags %#x), not a detached queue of cryo-mq0", name, fl);
	fl = get_iff(c, name);
	if (name[0])
		failf("c: attached to %s, it was attached to none", name);
	if ((fcntl(c, F_GETFL) & (O_ACCMODE | O_NONBLOCK)) != (O_RDWR | O_NONBLOCK))
		failf("c: file flags %#x", fcntl(c, F_GETFL));
	expect_cmd("ip -d link show cryo-tun1", "persist off");
	expect_cmd("ip -d link show cryo-mq0", "persist off");
	expect_cmd("ip -d link show cryo-mq0", "multi_queue");
	expect_cmd("ip -4 addr show cryo-tun1", "10.77.0.1/24");

	/* The datagram goes out of the device a is attached to. */
	send_probe();
	struct pollfd p = { a, POLLIN, 0 };
	int got = 0;
	while (!got && poll(&p, 1, 2000) == 1) {
		unsigned char pkt[2048];
		ssize_t n = read(a, pkt, sizeof(pkt));
		if (n >= (ssize_t)sizeof(struct iphdr) && (pkt[0] >> 4) == 4) {
			struct iphdr *ip = (struct iphdr *)pkt;
			got = ip->daddr == inet_addr("10.77.0.2") && ip->protocol == IPPROTO_UDP;
		}
	}
	if (!got)
		failf("a: no IPv4 datagram to 10.77.0.2 came out of cryo-tun1");

	close(a);
	close(b1);
	close(b2);
	usleep(100000);
	if (if_nametoindex("cryo-tun1"))
		failf("cryo-tun1 is still there with its file closed (persistent)");
	if (if_nametoindex("cryo-mq0"))
		failf("cryo-mq0 is still there with its files closed (persistent)");
	return prog_finish();
}
