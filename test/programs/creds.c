/*
 * creds: credentials (must start as root).
 *
 * Sets, in this order: supplementary groups {10, 20, 30}; gids 1001/1002/
 * 1003 and fsgid 1005; drops CAP_SYS_BOOT and CAP_MKNOD from the bounding
 * set; securebits KEEP_CAPS | NO_SETUID_FIXUP | NOROOT; with capset a
 * permitted set without MKNOD, SYS_BOOT and LINUX_IMMUTABLE, an effective
 * set without NET_RAW, SYS_TIME and DAC_READ_SEARCH as well, an inheritable
 * set {CHOWN, KILL, NET_BIND_SERVICE, AUDIT_READ}; ambient NET_BIND_SERVICE
 * and AUDIT_READ (a cap in the upper 32-bit word); uids 1001/1002/1003 and
 * fsuid 1004 (NO_SETUID_FIXUP keeps the caps); no_new_privs; dumpable 1
 * (the uid change cleared it); pdeath_signal SIGWINCH (harmless: ignored by
 * default, and the kernel sends it when the restoring parent exits).
 * Everything is recorded with getres[ug]id/getgroups/capget/prctl and the
 * Uid/Gid/Groups/Cap lines of /proc/self/status, and checked on SIGUSR1.
 * SIGUSR2: CAP_CHOWN is dropped from the effective set first -> FAIL.
 * stdout/stderr were opened by the harness as root: the fds stay writable.
 */
#include "common.h"

#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <linux/capability.h>
#include <linux/securebits.h>
#include <sys/fsuid.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#ifndef CAP_AUDIT_READ
#define CAP_AUDIT_READ 37
#endif

#define WANT_SECBITS (SECBIT_KEEP_CAPS | SECBIT_NO_SETUID_FIXUP | SECBIT_NOROOT)

struct creds {
	uid_t ruid, euid, suid, fsuid;
	gid_t rgid, egid, sgid, fsgid;
	int ngroups;
	gid_t groups[64];
	uint64_t eff, prm, inh, amb, bnd;
	int secbits, nnp, dumpable, pdeath, keepcaps;
	char status[4096];
};

static struct creds before, after;
static int last_cap;

static uint64_t bit(int cap)
{
	return 1ULL << cap;
}

static void get_caps(uint64_t *eff, uint64_t *prm, uint64_t *inh)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];

	MUST(syscall(SYS_capget, &h, d) == 0);
	*eff = d[0].effective | (uint64_t)d[1].effective << 32;
	*prm = d[0].permitted | (uint64_t)d[1].permitted << 32;
	*inh = d[0].inheritable | (uint64_t)d[1].inheritable << 32;
}

static int set_caps(uint64_t eff, uint64_t prm, uint64_t inh)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2] = {
		{ (uint32_t)eff, (uint32_t)prm, (uint32_t)inh },
		{ (uint32_t)(eff >> 32), (uint32_t)(prm >> 32), (uint32_t)(inh >> 32) },
	};

	return (int)syscall(SYS_capset, &h, d);
}

/* The credential lines of /proc/self/status, joined. */
static void status_lines(char *out, size_t size)
{
	static const char *keys[] = { "Uid:", "Gid:", "Groups:", "CapInh:", "CapPrm:", "CapEff:",
				      "CapBnd:", "CapAmb:", "NoNewPrivs:", "Seccomp:" };
	char buf[8192], *line, *save;
	int fd = open("/proc/self/status", O_RDONLY);
	ssize_t n;

	out[0] = 0;
	MUST(fd >= 0);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	MUST(n > 0);
	buf[n] = 0;
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
			if (!strncmp(line, keys[k], strlen(keys[k])) && strlen(out) + strlen(line) + 2 < size) {
				strcat(out, line);
				strcat(out, "|");
			}
}

static void record(struct creds *c)
{
	memset(c, 0, sizeof(*c));
	MUST(getresuid(&c->ruid, &c->euid, &c->suid) == 0);
	MUST(getresgid(&c->rgid, &c->egid, &c->sgid) == 0);
	c->fsuid = (uid_t)setfsuid((uid_t)-1); /* an invalid id: no change, returns the current one */
	c->fsgid = (gid_t)setfsgid((gid_t)-1);
	c->ngroups = getgroups(64, c->groups);
	get_caps(&c->eff, &c->prm, &c->inh);
	for (int cap = 0; cap <= last_cap; cap++) {
		if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, cap, 0, 0) == 1)
			c->amb |= bit(cap);
		if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) == 1)
			c->bnd |= bit(cap);
	}
	c->secbits = prctl(PR_GET_SECUREBITS, 0, 0, 0, 0);
	c->nnp = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);
	c->dumpable = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
	c->keepcaps = prctl(PR_GET_KEEPCAPS, 0, 0, 0, 0);
	MUST(prctl(PR_GET_PDEATHSIG, &c->pdeath, 0, 0, 0) == 0);
	status_lines(c->status, sizeof(c->status));
}

#define CMP(field, fmt)                                                                         \
	do {                                                                                    \
		if (before.field != after.field)                                                \
			failf(#field " is " fmt ", was " fmt, after.field, before.field);         \
	} while (0)

static void compare(void)
{
	CMP(ruid, "%u");
	CMP(euid, "%u");
	CMP(suid, "%u");
	CMP(fsuid, "%u");
	CMP(rgid, "%u");
	CMP(egid, "%u");
	CMP(sgid, "%u");
	CMP(fsgid, "%u");
	if (before.ngroups != after.ngroups ||
	    memcmp(before.groups, after.groups, sizeof(gid_t) * (before.ngroups > 0 ? before.ngroups : 0))) {
		char b[256] = "", a[256] = "";

		for (int i = 0; i < before.ngroups && i < 16; i++)
			snprintf(b + strlen(b), sizeof(b) - strlen(b), " %u", before.groups[i]);
		for (int i = 0; i < after.ngroups && i < 16; i++)
			snprintf(a + strlen(a), sizeof(a) - strlen(a), " %u", after.groups[i]);
		failf("groups are {%s }, were {%s }", a, b);
	}
	CMP(eff, "0x%" PRIx64);
	CMP(prm, "0x%" PRIx64);
	CMP(inh, "0x%" PRIx64);
	CMP(amb, "0x%" PRIx64);
	CMP(bnd, "0x%" PRIx64);
	CMP(secbits, "0x%x");
	CMP(nnp, "%d");
	CMP(dumpable, "%d");
	CMP(keepcaps, "%d");
	CMP(pdeath, "%d");
	/* Only the lines that differ: "Key: now (was then)". */
	{
		char b[4096], a[4096], *sb, *sa, *lb, *la;

		strcpy(b, before.status);
		strcpy(a, after.status);
		lb = strtok_r(b, "|", &sb);
		la = strtok_r(a, "|", &sa);
		while (lb || la) {
			if (!lb || !la || strcmp(lb, la))
				failf("/proc/self/status: '%s', was '%s'", la ? la : "(none)", lb ? lb : "(none)");
			lb = lb ? strtok_r(NULL, "|", &sb) : NULL;
			la = la ? strtok_r(NULL, "|", &sa) : NULL;
		}
	}
}

int main(int argc, char **argv)
{
	static const gid_t groups[] = { 10, 20, 30 };
	uint64_t eff, prm, inh;
	char buf[32];
	int fd, n;

	(void)argc;
	(void)argv;
	prog_init();
	if (geteuid() != 0) {
		fprintf(stderr, "setup failed: creds must start as root\n");
		return 2;
	}
	fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY);
	MUST(fd >= 0);
	n = (int)read(fd, buf, sizeof(buf) - 1);
	close(fd);
	MUST(n > 0);
	buf[n] = 0;
	last_cap = atoi(buf);
	MUST(last_cap >= CAP_AUDIT_READ && last_cap < 64);

	MUST(setgroups(3, groups) == 0);
	MUST(setresgid(1001, 1002, 1003) == 0);
	setfsgid(1005);
	MUST(prctl(PR_CAPBSET_DROP, CAP_SYS_BOOT, 0, 0, 0) == 0);
	MUST(prctl(PR_CAPBSET_DROP, CAP_MKNOD, 0, 0, 0) == 0);
	MUST(prctl(PR_SET_SECUREBITS, WANT_SECBITS, 0, 0, 0) == 0);

	get_caps(&eff, &prm, &inh);
	MUST((prm & bit(CAP_SETUID)) && (prm & bit(CAP_SETGID)) && (prm & bit(CAP_NET_BIND_SERVICE)) &&
	     (prm & bit(CAP_AUDIT_READ)) && (prm & bit(CAP_CHOWN)));
	prm &= ~(bit(CAP_MKNOD) | bit(CAP_SYS_BOOT) | bit(CAP_LINUX_IMMUTABLE));
	eff = prm & ~(bit(CAP_NET_RAW) | bit(CAP_SYS_TIME) | bit(CAP_DAC_READ_SEARCH));
	inh = bit(CAP_CHOWN) | bit(CAP_KILL) | bit(CAP_NET_BIND_SERVICE) | bit(CAP_AUDIT_READ);
	MUST(set_caps(eff, prm, inh) == 0);
	MUST(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_NET_BIND_SERVICE, 0, 0) == 0);
	MUST(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_AUDIT_READ, 0, 0) == 0);

	MUST(setresuid(1001, 1002, 1003) == 0);
	setfsuid(1004);
	MUST(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0);
	/* Credential changes reset these two: set them last. */
	MUST(prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) == 0);
	MUST(prctl(PR_SET_PDEATHSIG, SIGWINCH, 0, 0, 0) == 0);

	record(&before);
	/* The state is what was asked for. */
	MUST(before.ruid == 1001 && before.euid == 1002 && before.suid == 1003 && before.fsuid == 1004);
	MUST(before.rgid == 1001 && before.egid == 1002 && before.sgid == 1003 && before.fsgid == 1005);
	MUST(before.ngroups == 3 && before.groups[0] == 10 && before.groups[1] == 20 && before.groups[2] == 30);
	MUST(before.eff == eff && before.prm == prm && before.inh == inh);
	MUST(before.amb == (bit(CAP_NET_BIND_SERVICE) | bit(CAP_AUDIT_READ)));
	MUST(!(before.bnd & bit(CAP_SYS_BOOT)) && !(before.bnd & bit(CAP_MKNOD)) && (before.bnd & bit(CAP_CHOWN)));
	MUST(before.secbits == WANT_SECBITS && before.keepcaps == 1);
	MUST(before.nnp == 1 && before.dumpable == 1 && before.pdeath == SIGWINCH);
	printf("creds: %s\n", before.status);
	prog_ready();

	if (wait_for_signal()) {
		get_caps(&eff, &prm, &inh);
		set_caps(eff & ~bit(CAP_CHOWN), prm, inh);
	}
	record(&after);
	compare();
	return prog_finish();
}
