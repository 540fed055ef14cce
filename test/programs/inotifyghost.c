/* inotifyghost: an inotify watch on a file deleted while open (a ghost file).
 * Makes DIR/w/gone, opens it read-write, writes "data", watches DIR/w (wd 1)
 * and the file (wd 2) for every event, then unlinks the file and reads the
 * events of that away.
 * Checks after restore: the queue is empty (what the restore itself did under
 * the watches never happened to us); watch 2 is on the inode of the fd (the
 * fdinfo's ino), which is still deleted and holds "data"; writing and closing
 * the fd reports IN_MODIFY, IN_CLOSE_WRITE and IN_DELETE_SELF on wd 2;
 * creating DIR/w/new reports IN_CREATE for "new" on wd 1.
 * SIGUSR2: remove watch 2 first (FAIL). */
#include "common.h"
#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/stat.h>

/* The inode of watch `wd` as fdinfo names it; 0 if there is no such watch. */
static unsigned long long watched_ino(int in, int wd)
{
	char path[64], line[512];
	unsigned long long ino = 0, got;
	int w;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", in);
	f = fopen(path, "r");
	MUST(f != NULL);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "inotify wd:%x ino:%llx", &w, &got) == 2 && w == wd)
			ino = got;
	fclose(f);
	return ino;
}

/* Reads the queue out: the events of each wd or'ed together, and whether
 * wd 1 saw `name` created. Returns the number of bytes read. */
static ssize_t drain(int in, uint32_t *m1, uint32_t *m2, const char *name, int *created)
{
	char buf[4096] __attribute__((aligned(8)));
	ssize_t len, total = 0;

	while ((len = read(in, buf, sizeof(buf))) > 0) {
		total += len;
		for (char *p = buf; p < buf + len;) {
			struct inotify_event *e = (void *)p;

			if (e->wd == 1)
				*m1 |= e->mask;
			if (e->wd == 2)
				*m2 |= e->mask;
			if (e->wd == 1 && name && e->len && !strcmp(e->name, name) && (e->mask & IN_CREATE))
				*created = 1;
			p += sizeof(*e) + e->len;
		}
	}
	return total;
}

int main(int argc, char **argv)
{
	const char *dir = prog_dir(argc, argv);
	char w[4096], gone[4200], created[4200], data[8] = { 0 };
	uint32_t m1 = 0, m2 = 0;
	int in, fd, made = 0;
	struct stat st;
	ssize_t stale;

	prog_init();
	snprintf(w, sizeof(w), "%s/w", dir);
	snprintf(gone, sizeof(gone), "%s/gone", w);
	snprintf(created, sizeof(created), "%s/new", w);
	MUST(mkdir(w, 0755) == 0);
	MUST((fd = open(gone, O_CREAT | O_RDWR, 0644)) >= 0);
	MUST(write(fd, "data", 4) == 4);
	MUST((in = inotify_init1(IN_NONBLOCK)) >= 0);
	MUST(inotify_add_watch(in, w, IN_ALL_EVENTS) == 1);
	MUST(inotify_add_watch(in, gone, IN_ALL_EVENTS) == 2);
	MUST(unlink(gone) == 0);
	drain(in, &m1, &m2, NULL, NULL);
	MUST(m1 & IN_DELETE);
	prog_ready();
	if (wait_for_signal())
		MUST(inotify_rm_watch(in, 2) == 0);

	m1 = m2 = 0;
	stale = drain(in, &m1, &m2, NULL, NULL);
	if (stale && !got_usr2)
		failf("%zd bytes of events queued before we did anything (wd 1: 0x%x, wd 2: 0x%x)", stale, m1, m2);
	MUST(fstat(fd, &st) == 0);
	if (watched_ino(in, 2) != (unsigned long long)st.st_ino)
		failf("watch 2 is on inode %llu, the fd on %llu", watched_ino(in, 2), (unsigned long long)st.st_ino);
	if (st.st_nlink != 0)
		failf("the file has %lu links, want 0 (deleted)", (unsigned long)st.st_nlink);
	if (pread(fd, data, 4, 0) != 4 || strcmp(data, "data"))
		failf("the file holds \"%s\", want \"data\"", data);
	MUST(write(fd, "more", 4) == 4);
	MUST(close(fd) == 0);
	MUST((fd = open(created, O_CREAT | O_WRONLY, 0644)) >= 0 && close(fd) == 0);
	MUST(unlink(created) == 0);
	m1 = m2 = 0;
	drain(in, &m1, &m2, "new", &made);
	if ((m2 & (IN_MODIFY | IN_CLOSE_WRITE | IN_DELETE_SELF)) != (IN_MODIFY | IN_CLOSE_WRITE | IN_DELETE_SELF))
		failf("watch 2: events 0x%x, want IN_MODIFY|IN_CLOSE_WRITE|IN_DELETE_SELF", m2);
	if (!made)
		failf("watch 1: no IN_CREATE for new (events 0x%x)", m1);
	MUST(rmdir(w) == 0);
	return prog_finish();
}
