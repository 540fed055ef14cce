/* Packet sockets, in a network namespace of the task's own (lo up, no traffic):
 *  - two SOCK_RAW ETH_P_ALL sockets bound to lo in fanout group 77 (hash,
 *    rollover); the first with TPACKET_V2, PACKET_AUXDATA, a promiscuous
 *    membership on lo and an rx ring of 4 frames;
 *  - a SOCK_DGRAM ETH_P_IP socket bound to lo with PACKET_RESERVE 64,
 *    PACKET_ORIGDEV, a unicast membership and a tx ring, O_NONBLOCK;
 *  - a SOCK_PACKET socket bound to lo, and an unbound one;
 *  - a SOCK_RAW ETH_P_IP socket bound to lo with a TPACKET_V2 rx ring mapped
 *    shared into the task.
 * After restore the options, bindings, memberships, fanout and rings are as
 * they were (the rx ring maps with its size), the ETH_P_IP socket receives a
 * UDP datagram sent over lo, and the datagram shows in the mapped ring at the
 * same address.
 * argv[2] "queued": a datagram waits in the ETH_P_IP socket; "bypass":
 * PACKET_QDISC_BYPASS is set on it; "closed": the ring stays mapped but its
 * socket's fd is closed; "txpending": a frame of the tx ring is queued to be
 * sent (TP_STATUS_SEND_REQUEST) and never sent; "rxheld": a first socket's rx
 * ring holds frame 0 (TP_STATUS_USER) while the later frames are given back,
 * so that poll shows nothing to read (all refused).
 * SIGUSR2: the promiscuous membership is dropped first (FAIL). */
#include "common.h"
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>

struct mreq_max {
	int ifindex;
	unsigned short type, alen;
	unsigned char addr[32];
};

static int opt(int fd, int o)
{
	int v = -1;
	socklen_t l = sizeof(v);
	if (getsockopt(fd, SOL_PACKET, o, &v, &l))
		return -1;
	return v;
}

static void setopt(int fd, int o, int v)
{
	MUST(setsockopt(fd, SOL_PACKET, o, &v, sizeof(v)) == 0);
}

static void bind_ll(int fd, int ifindex)
{
	struct sockaddr_ll a = { .sll_family = AF_PACKET, .sll_ifindex = ifindex };
	MUST(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
}

static void ring(int fd, int o)
{
	struct tpacket_req r = { .tp_block_size = 4096, .tp_block_nr = 1, .tp_frame_size = 1024, .tp_frame_nr = 4 };
	MUST(setsockopt(fd, SOL_PACKET, o, &r, sizeof(r)) == 0);
}

static void udp_to_lo(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(9), .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int u = socket(AF_INET, SOCK_DGRAM, 0);
	MUST(sendto(u, "cryo", 4, 0, (struct sockaddr *)&a, sizeof(a)) == 4);
	close(u);
	usleep(20000);
}

static void check_ll(int fd, int ifindex, int proto, const char *what)
{
	struct sockaddr_ll a = { 0 };
	socklen_t l = sizeof(a);
	if (getsockname(fd, (struct sockaddr *)&a, &l) || a.sll_ifindex != ifindex || a.sll_protocol != htons(proto))
		failf("%s: bound to %d protocol %#x, want %d %#x", what, a.sll_ifindex, ntohs(a.sll_protocol), ifindex, proto);
}

static void check_spkt(int fd, const char *dev, const char *what)
{
	struct sockaddr a = { 0 };
	socklen_t l = sizeof(a);
	if (getsockname(fd, &a, &l) || strcmp(a.sa_data, dev))
		failf("%s: bound to \"%s\", want \"%s\"", what, a.sa_data, dev);
}

/* A socket whose rx ring holds frame 0 while the frames after it are given
 * back: packet_poll, which looks at the frame before the head, shows nothing. */
static void rx_held(void)
{
	struct pollfd p;
	char *m;
	int fd, i, n;

	MUST((fd = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_IP))) >= 0);
	bind_ll(fd, 1);
	setopt(fd, PACKET_VERSION, TPACKET_V2);
	ring(fd, PACKET_RX_RING);
	MUST((m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) != MAP_FAILED);
	for (n = 0; n < 2; ) {
		udp_to_lo();
		for (n = 0; n < 4 && (((struct tpacket2_hdr *)(m + 1024 * n))->tp_status & TP_STATUS_USER); n++)
			;
	}
	for (i = 1; i < n; i++)
		__atomic_store_n(&((struct tpacket2_hdr *)(m + 1024 * i))->tp_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
	p.fd = fd;
	p.events = POLLIN;
	MUST(poll(&p, 1, 0) == 0);
}

int main(int argc, char **argv)
{
	const char *mode = argc > 2 ? argv[2] : "";
	struct mreq_max promisc = { .ifindex = 1, .type = PACKET_MR_PROMISC };
	struct mreq_max uni = { .ifindex = 1, .type = PACKET_MR_UNICAST, .alen = 6, .addr = { 2, 0, 0, 0, 0, 7 } };
	struct ifreq ifr = { 0 };
	struct sockaddr sp = { .sa_family = AF_PACKET };
	struct tpacket2_hdr *frame;
	int r1, r2, r3, dg, s1, s2, s, fanout = 77 | ((PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_ROLLOVER) << 16), n;
	unsigned char buf[2048];
	void *m;

	prog_init();
	MUST(unshare(CLONE_NEWNET) == 0);
	s = socket(AF_INET, SOCK_DGRAM, 0);
	strcpy(ifr.ifr_name, "lo");
	ifr.ifr_flags = IFF_UP | IFF_RUNNING;
	MUST(ioctl(s, SIOCSIFFLAGS, &ifr) == 0);
	close(s);
	if (!strcmp(mode, "rxheld"))
		rx_held();

	MUST((r1 = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL))) >= 0);
	bind_ll(r1, 1);
	setopt(r1, PACKET_VERSION, TPACKET_V2);
	setopt(r1, PACKET_AUXDATA, 1);
	MUST(setsockopt(r1, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &promisc, sizeof(promisc)) == 0);
	ring(r1, PACKET_RX_RING);
	setopt(r1, PACKET_FANOUT, fanout);
	MUST((r2 = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL))) >= 0);
	bind_ll(r2, 1);
	setopt(r2, PACKET_FANOUT, fanout);

	MUST((dg = socket(AF_PACKET, SOCK_DGRAM | SOCK_NONBLOCK, htons(ETH_P_IP))) >= 0);
	bind_ll(dg, 1);
	setopt(dg, PACKET_RESERVE, 64);
	setopt(dg, PACKET_ORIGDEV, 1);
	MUST(setsockopt(dg, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &uni, sizeof(uni)) == 0);
	ring(dg, PACKET_TX_RING);

	MUST((s1 = socket(AF_PACKET, SOCK_PACKET, htons(ETH_P_ALL))) >= 0);
	strcpy(sp.sa_data, "lo");
	MUST(bind(s1, &sp, sizeof(sp)) == 0);
	MUST((s2 = socket(AF_PACKET, SOCK_PACKET, htons(ETH_P_ALL))) >= 0);

	MUST((r3 = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_IP))) >= 0);
	bind_ll(r3, 1);
	setopt(r3, PACKET_VERSION, TPACKET_V2);
	ring(r3, PACKET_RX_RING);
	MUST((frame = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, r3, 0)) != MAP_FAILED);
	if (!strcmp(mode, "closed"))
		close(r3);

	if (!strcmp(mode, "queued"))
		udp_to_lo();
	if (!strcmp(mode, "bypass"))
		setopt(dg, PACKET_QDISC_BYPASS, 1);
	if (!strcmp(mode, "txpending")) {
		/* TPACKET_V1: tp_status is an unsigned long; the frame is never sent (no send()). */
		struct tpacket_hdr *tx;
		MUST((tx = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, dg, 0)) != MAP_FAILED);
		tx->tp_len = 20;
		memset((char *)tx + TPACKET_HDRLEN - sizeof(struct sockaddr_ll), 0x45, 20);
		__atomic_store_n(&tx->tp_status, TP_STATUS_SEND_REQUEST, __ATOMIC_RELEASE);
	}
	prog_ready();

	if (wait_for_signal())
		MUST(setsockopt(r1, SOL_PACKET, PACKET_DROP_MEMBERSHIP, &promisc, sizeof(promisc)) == 0);

	check_ll(r1, 1, ETH_P_ALL, "raw 1");
	check_ll(r2, 1, ETH_P_ALL, "raw 2");
	check_ll(dg, 1, ETH_P_IP, "dgram");
	if (opt(r1, PACKET_VERSION) != TPACKET_V2 || opt(r1, PACKET_AUXDATA) != 1)
		failf("raw 1: version %d auxdata %d", opt(r1, PACKET_VERSION), opt(r1, PACKET_AUXDATA));
	if (opt(r1, PACKET_FANOUT) != fanout || opt(r2, PACKET_FANOUT) != fanout)
		failf("fanout %#x and %#x, want %#x", opt(r1, PACKET_FANOUT), opt(r2, PACKET_FANOUT), fanout);
	/* The kernel's drop never fails: the memberships show as lo's promiscuity
	 * (one for the promiscuous one, one for the unicast address lo cannot filter). */
	if (system("ip -d link show lo | grep -q ' promiscuity 2 '"))
		failf("lo's promiscuity is not 2: a membership is gone");
	if ((m = mmap(NULL, 4096, PROT_READ, MAP_SHARED, r1, 0)) == MAP_FAILED)
		failf("raw 1: its rx ring does not map: %s", strerror(errno));
	else
		munmap(m, 4096);
	if (opt(dg, PACKET_RESERVE) != 64 || opt(dg, PACKET_ORIGDEV) != 1)
		failf("dgram: reserve %d origdev %d", opt(dg, PACKET_RESERVE), opt(dg, PACKET_ORIGDEV));
	if ((m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, dg, 0)) == MAP_FAILED)
		failf("dgram: its tx ring does not map: %s", strerror(errno));
	else
		munmap(m, 4096);
	if (!(fcntl(dg, F_GETFL) & O_NONBLOCK))
		failf("dgram: O_NONBLOCK is gone");
	udp_to_lo();
	if ((n = recv(dg, buf, sizeof(buf), 0)) != 32 || buf[0] != 0x45 || memcmp(buf + 28, "cryo", 4))
		failf("dgram: no IP packet of the datagram came (%d: %s)", n, n < 0 ? strerror(errno) : "");
	/* The datagram went into r3's ring too: its first frame, through the old mapping. */
	if (!(frame->tp_status & TP_STATUS_USER) || frame->tp_len != 46 || ((unsigned char *)frame)[frame->tp_mac + 14] != 0x45)
		failf("ring: the datagram is not in the mapped ring (status %#x, length %u)", frame->tp_status, frame->tp_len);
	check_spkt(s1, "lo", "spkt 1");
	check_spkt(s2, "", "spkt 2");
	return prog_finish();
}
