/* uprobes: a uprobe on a function of this program (perf_event_open on the uprobe
 * PMU), hit once, so that the kernel maps its [uprobes] page into the task; the
 * perf fd is then closed, the mapping stays. cryo does not support uprobes yet:
 * the dump must fail there and leave the task running. On SIGUSR1 the task checks
 * that the mapping is still there and the function still runs. SIGUSR2: look
 * for a mapping that is not there (FAIL). */
#include "common.h"
#include <linux/perf_event.h>
#include <sys/syscall.h>

static volatile int calls;

static void __attribute__((noinline)) probed(void)
{
	calls++;
}

/* Is a mapping named `name` in /proc/self/maps? */
static int mapped(const char *name)
{
	char line[512];
	int found = 0;
	FILE *f = fopen("/proc/self/maps", "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (strstr(line, name))
			found = 1;
	fclose(f);
	return found;
}

int main(int argc, char **argv)
{
	unsigned long s, e, pg, at = (unsigned long)probed, off = 0;
	char line[512], exe[4096], perms[8];
	struct perf_event_attr attr;
	ssize_t n;
	int type = -1, fd;
	FILE *f;

	(void)argc;
	(void)argv;
	prog_init();
	MUST((n = readlink("/proc/self/exe", exe, sizeof(exe) - 1)) > 0);
	exe[n] = 0;
	MUST((f = fopen("/proc/self/maps", "r")) != NULL);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%lx-%lx %7s %lx", &s, &e, perms, &pg) == 4 && at >= s && at < e)
			off = at - s + pg;
	fclose(f);
	MUST(off != 0);
	MUST((f = fopen("/sys/bus/event_source/devices/uprobe/type", "r")) != NULL);
	MUST(fscanf(f, "%d", &type) == 1);
	fclose(f);
	memset(&attr, 0, sizeof(attr));
	attr.size = sizeof(attr);
	attr.type = (unsigned)type;
	attr.config1 = (uint64_t)(uintptr_t)exe; /* uprobe_path */
	attr.config2 = off;                      /* probe_offset */
	MUST((fd = (int)syscall(SYS_perf_event_open, &attr, 0, -1, -1, 0)) >= 0);
	probed();
	close(fd);
	MUST(mapped("[uprobes]"));
	prog_ready();

	const char *want = wait_for_signal() ? "[no such mapping]" : "[uprobes]";
	probed();
	if (!mapped(want))
		failf("no %s mapping", want);
	if (calls != 2)
		failf("the probed function ran %d times, want 2", calls);
	return prog_finish();
}
