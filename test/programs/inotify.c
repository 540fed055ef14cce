/* inotify: usage inotify FILE ALIAS DIR. Watches FILE (IN_MODIFY,
 * IN_CLOSE_WRITE) as wd 1 and DIR (IN_CREATE, IN_ONLYDIR) as wd 2, in a
 * non-blocking instance. ALIAS is another name of FILE's inode (a hard link,
 * FILE itself): the test may hide FILE's name (overmount) so that only a scan
 * finds the inode.
 * Checks after restore: the inotify lines of fdinfo read the same (wd, inode,
 * device, mask, handle); writing through ALIAS reports IN_MODIFY and
 * IN_CLOSE_WRITE on wd 1; creating DIR/created reports IN_CREATE with that
 * name on wd 2.
 * SIGUSR2: remove watch 1 first (FAIL). */
#include "common.h"
#include <fcntl.h>
#include <sys/inotify.h>

static char before[4096];

static void fdinfo_of(int fd, char *out, size_t size)
{
	char path[64], buf[1024];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "r");
	MUST(f != NULL);
	out[0] = 0;
	while (fgets(buf, sizeof(buf), f))
		if (!strncmp(buf, "flags:", 6) || !strncmp(buf, "inotify ", 8))
			snprintf(out + strlen(out), size - strlen(out), "%s", buf);
	fclose(f);
}

int main(int argc, char **argv)
{
	char buf[4096] __attribute__((aligned(8))), now[4096], created[8192];
	uint32_t m_file = 0, m_dir = 0;
	int in, fd;
	ssize_t len;

	prog_init();
	if (argc != 4) {
		fprintf(stderr, "usage: inotify FILE ALIAS DIR\n");
		return 2;
	}
	MUST((in = inotify_init1(IN_NONBLOCK)) >= 0);
	MUST(inotify_add_watch(in, argv[1], IN_MODIFY | IN_CLOSE_WRITE) == 1);
	MUST(inotify_add_watch(in, argv[3], IN_CREATE | IN_ONLYDIR) == 2);
	fdinfo_of(in, before, sizeof(before));
	prog_ready();
	if (wait_for_signal())
		MUST(inotify_rm_watch(in, 1) == 0);

	while (read(in, buf, sizeof(buf)) > 0)
		; /* IN_IGNORED of the removed watch, say */
	fdinfo_of(in, now, sizeof(now));
	if (strcmp(now, before))
		failf("fdinfo changed: was [%s] now [%s]", before, now);
	MUST((fd = open(argv[2], O_WRONLY)) >= 0 && write(fd, "x", 1) == 1 && close(fd) == 0);
	snprintf(created, sizeof(created), "%s/created", argv[3]);
	MUST((fd = open(created, O_CREAT | O_WRONLY, 0644)) >= 0 && close(fd) == 0);
	while ((len = read(in, buf, sizeof(buf))) > 0) {
		for (char *p = buf; p < buf + len;) {
			struct inotify_event *e = (void *)p;

			if (e->wd == 1)
				m_file |= e->mask;
			if (e->wd == 2 && e->len && !strcmp(e->name, "created"))
				m_dir |= e->mask;
			p += sizeof(*e) + e->len;
		}
	}
	if (m_file != (IN_MODIFY | IN_CLOSE_WRITE))
		failf("watch 1 (%s): events 0x%x, want IN_MODIFY|IN_CLOSE_WRITE", argv[1], m_file);
	if (m_dir != IN_CREATE)
		failf("watch 2 (%s): events 0x%x for created, want IN_CREATE", argv[3], m_dir);
	return prog_finish();
}
