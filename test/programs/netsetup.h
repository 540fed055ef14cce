/* Setup steps of the network programs: a shell command that must succeed, and
 * the output of one that must hold a string (checked after restore). */
#ifndef CRYO_TEST_NETSETUP_H
#define CRYO_TEST_NETSETUP_H
#include "common.h"

HELPER void sh(const char *cmd)
{
	int r = system(cmd);
	if (r != 0) {
		fprintf(stderr, "setup: %s: status %d\n", cmd, r);
		exit(2);
	}
}

HELPER void expect_cmd(const char *cmd, const char *want)
{
	char out[8192];
	size_t n;
	FILE *p = popen(cmd, "r");
	if (!p) {
		failf("%s: popen failed", cmd);
		return;
	}
	n = fread(out, 1, sizeof(out) - 1, p);
	out[n] = 0;
	pclose(p);
	if (!strstr(out, want))
		failf("%s: no \"%s\" in: %s", cmd, want, out);
}
#endif
