/*
 * tundev: a task in a network namespace of its own (unshare(CLONE_NEWNET))
 * with two persistent tun/tap devices that no file holds (as `ip tuntap add`
 * leaves them):
 *   - cryo-tap0: tap, no packet info, vnet header (size 12), owner 1000,
 *     group 1001, MTU 1450, MAC 02:c7:00:00:00:77, up, 10.66.0.1/24 (a
 *     send buffer set on a queue goes with the queue: a new one has INT_MAX);
 *   - cryo-tun0: tun, multi-queue, packet info, down, 10.55.0.1/24.
 * On SIGUSR1 it checks their indexes, kinds, flags, owner and group (ip -d),
 * MTU, MAC, addresses, and, attached for a moment, the vnet header size;
 * PASS. SIGUSR2: cryo-tap0's vnet header size is changed first.
 */
#define _GNU_SOURCE
#include "common.h"
#include "netsetup.h"

#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <pwd.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

/* A file attached to the device (with its flags), or -1. */
static int tun_attach(const char *name, int flags)
{
	struct ifreq ifr = { 0 };
	int fd = open("/dev/net/tun", O_RDWR);

	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	ifr.ifr_flags = flags;
	if (fd < 0 || ioctl(fd, TUNSETIFF, &ifr)) {
		failf("TUNSETIFF %s: %s", name, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

#define TAP_FLAGS (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR)

int main(int argc, char **argv)
{
	int fd, v, tap, tunx;
	char want[128];
	struct passwd *pw;

	prog_init();
	if (unshare(CLONE_NEWNET)) {
		perror("unshare");
		return 2;
	}
	sh("ip link set lo up");
	sh("ip tuntap add cryo-tap0 mode tap user 1000 group 1001 vnet_hdr");
	fd = tun_attach("cryo-tap0", TAP_FLAGS);
	v = 12;
	if (fd < 0 || ioctl(fd, TUNSETVNETHDRSZ, &v)) {
		perror("TUNSETVNETHDRSZ");
		return 2;
	}
	close(fd);
	sh("ip link set cryo-tap0 mtu 1450 address 02:c7:00:00:00:77 up && ip addr add 10.66.0.1/24 dev cryo-tap0");
	sh("ip tuntap add cryo-tun0 mode tun multi_queue pi && ip addr add 10.55.0.1/24 dev cryo-tun0");
	tap = if_nametoindex("cryo-tap0");
	tunx = if_nametoindex("cryo-tun0");
	prog_ready();

	if (wait_for_signal()) {
		fd = tun_attach("cryo-tap0", TAP_FLAGS);
		v = 10;
		if (fd >= 0 && ioctl(fd, TUNSETVNETHDRSZ, &v))
			perror("TUNSETVNETHDRSZ");
		if (fd >= 0)
			close(fd);
	}

	if (if_nametoindex("cryo-tap0") != (unsigned)tap || if_nametoindex("cryo-tun0") != (unsigned)tunx)
		failf("indexes cryo-tap0 %u cryo-tun0 %u, want %d %d", if_nametoindex("cryo-tap0"), if_nametoindex("cryo-tun0"), tap, tunx);
	pw = getpwuid(1000);
	expect_cmd("ip -d link show cryo-tap0", "tun type tap pi off vnet_hdr on persist on");
	snprintf(want, sizeof(want), "user %s group 1001", pw ? pw->pw_name : "1000");
	expect_cmd("ip -d link show cryo-tap0", want);
	expect_cmd("ip link show cryo-tap0", "mtu 1450");
	expect_cmd("ip link show cryo-tap0", "link/ether 02:c7:00:00:00:77");
	expect_cmd("ip link show cryo-tap0", ",UP");
	expect_cmd("ip addr show cryo-tap0", "inet 10.66.0.1/24");
	expect_cmd("ip -d link show cryo-tun0", "tun type tun pi on vnet_hdr off multi_queue");
	expect_cmd("ip -d link show cryo-tun0", "persist on");
	expect_cmd("ip link show cryo-tun0", "state DOWN");
	expect_cmd("ip addr show cryo-tun0", "inet 10.55.0.1/24");
	fd = tun_attach("cryo-tap0", TAP_FLAGS);
	if (fd >= 0) {
		if (ioctl(fd, TUNGETVNETHDRSZ, &v) || v != 12)
			failf("cryo-tap0's vnet header size is %d, want 12", v);
		close(fd);
	}
	return prog_finish();
}
