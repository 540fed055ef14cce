/*
 * ipcns: a task in UTS and IPC namespaces of its own, with a host name, SysV
 * shared memory, semaphores and message queues, and ipc sysctls of its own.
 *
 * argv[2] says how (the directory is argv[1]):
 *   own      - (default) unshare(CLONE_NEWUTS|CLONE_NEWIPC), then set up
 *              everything there;
 *   given    - as own, in the namespaces it was started in (`unshare --uts
 *              --ipc --fork`);
 *   child    - the root stays in cryo's namespaces; a child unshares a uts
 *              namespace of its own (a tree cryo must refuse, as CRIU does);
 *   mqueue   - as own, plus POSIX message queues: /cryo-mq (4 messages of
 *              64 bytes at most, mode 0640, uid 1000, gid 1001) holding
 *              "first" (priority 5), "low" (1) and "second" (5), and
 *              /cryo-empty (the defaults, mode 0666), none of them open;
 *   mqnotify - as mqueue, with a notification registered on /cryo-mq (which
 *              cryo must refuse);
 *   mqfd     - as mqueue, with /cryo-mq kept open (O_NONBLOCK set by
 *              mq_setattr): after restore that descriptor is of the same
 *              queue, non-blocking, and receives;
 *   hostshm  - no namespace of its own: a SysV segment of the host's ipc
 *              namespace is attached (not the tree's: refused, as CRIU);
 *   host     - no namespace of its own: SysV objects of the host's ipc
 *              namespace are made but not attached (not the tree's: not dumped).
 * The state set up (own):
 *   - host name "cryo-uts-test", domain name "cryo.example";
 *   - sysctls kernel.msgmnb, kernel.msgmax, kernel.sem, kernel.shmmni,
 *     kernel.shm_rmid_forced (1: shm C lives as long as the task that made
 *     it), fs.mqueue.msg_max changed;
 *   - shm A: key 0x1234, 3 pages + 100 bytes, mode 0640, uid 1000, gid 1001,
 *     attached read-write (pattern written; one page never touched);
 *   - shm B: IPC_PRIVATE, one page, attached twice read-only, its contents
 *     written through a third attachment that is detached again;
 *   - shm C: key 0x1236, two pages, not attached at all, with contents;
 *   - shm D: key 0x1237, attached, then IPC_RMID'd (it lives on while attached);
 *   - a semaphore set, key 0x2345, 5 semaphores 1..5 (one 30000), mode 0600,
 *     made at a chosen id (kernel.sem_next_id);
 *   - a set (key 0x2346) and a segment (shm E, key 0x1239, attached by the
 *     root) made by uid 1000, gid 1001 (a child that took those ids), mode
 *     0666: their creator ids (cuid, cgid) are those;
 *   - a child attached to shm A (by fork) blocks in semop() on a set of
 *     key 0x2347 (value 0); on the check the root releases it and it writes
 *     into page 1 of shm A, which the root then sees;
 *   - a message queue, key 0x3456, qbytes 4000, three messages of types 7, 3,
 *     7 and sizes 10, 1000, 0; a second empty queue, IPC_PRIVATE, mode 0666.
 * On SIGUSR1 it checks all of that (same ids, keys, modes, owners, sizes,
 * contents, values, messages in order) and PASSes.
 * SIGUSR2: a semaphore value is changed first.
 */
#define _GNU_SOURCE
#include "common.h"

#include <fcntl.h>
#include <mqueue.h>
#include <sched.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/stat.h>
#include <sys/shm.h>
#include <sys/wait.h>

#define PAGE 4096
#define SIZE_A (3 * PAGE + 100)

union semun {
	int val;
	struct semid_ds *buf;
	unsigned short *array;
};

static const char *sysctls[][2] = {
	{ "/proc/sys/kernel/msgmnb", "20000" },
	{ "/proc/sys/kernel/msgmax", "9000" },
	{ "/proc/sys/kernel/sem", "300\t32001\t33\t129" },
	{ "/proc/sys/kernel/shmmni", "3000" },
	/* A segment without attachments (shm C) then lives only as long as its creator. */
	{ "/proc/sys/kernel/shm_rmid_forced", "1" },
	{ "/proc/sys/fs/mqueue/msg_max", "77" },
};
#define NSYSCTLS (sizeof(sysctls) / sizeof(sysctls[0]))

static void write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY);

	MUST(fd >= 0);
	MUST(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	close(fd);
}

static void read_file(const char *path, char *out, size_t len)
{
	int fd = open(path, O_RDONLY);
	ssize_t n = fd < 0 ? -1 : read(fd, out, len - 1);

	out[n < 0 ? 0 : n] = 0;
	if (n > 0 && out[n - 1] == '\n')
		out[n - 1] = 0;
	if (fd >= 0)
		close(fd);
}

static int shm_a, shm_b, shm_c, shm_d, shm_e, sem_id, msg_id, msg_empty, sem_other, sem_wait;
static pid_t waiter;
static unsigned char *at_a, *at_b1, *at_b2, *at_d;

static unsigned char byte_of(int seg, size_t i)
{
	return (unsigned char)(pattern64(seg, i / 8) >> (8 * (i % 8)));
}

static void fill(unsigned char *p, int seg, size_t from, size_t to)
{
	for (size_t i = from; i < to; i++)
		p[i] = byte_of(seg, i);
}

static void check_bytes(const char *what, const unsigned char *p, int seg, size_t from, size_t to)
{
	for (size_t i = from; i < to; i++) {
		if (p[i] != byte_of(seg, i)) {
			failf("%s: byte %zu is %u, want %u", what, i, p[i], byte_of(seg, i));
			return;
		}
	}
}

static void check_zero(const char *what, const unsigned char *p, size_t from, size_t to)
{
	for (size_t i = from; i < to; i++) {
		if (p[i]) {
			failf("%s: byte %zu is %u, want 0", what, i, p[i]);
			return;
		}
	}
}

struct msg {
	long type;
	char text[1000];
};
static const long msg_types[] = { 7, 3, 7 };
static const size_t msg_sizes[] = { 10, 1000, 0 };

static void setup_ipc(void)
{
	union semun arg;
	struct shmid_ds sds;
	struct msqid_ds mds;
	unsigned short vals[5] = { 1, 2, 3, 4, 30000 };
	unsigned char *tmp;

	/* shm_rmid_forced last: a segment detached to no attachment would go at once. */
	for (size_t i = 0; i < NSYSCTLS; i++)
		if (!strstr(sysctls[i][0], "shm_rmid_forced"))
			write_file(sysctls[i][0], sysctls[i][1]);

	MUST((shm_a = shmget(0x1234, SIZE_A, IPC_CREAT | IPC_EXCL | 0640)) >= 0);
	MUST((at_a = shmat(shm_a, NULL, 0)) != (void *)-1);
	fill(at_a, 1, 0, PAGE);
	fill(at_a, 1, 2 * PAGE, SIZE_A); /* page 1 stays a hole */
	MUST(shmctl(shm_a, IPC_STAT, &sds) == 0);
	sds.shm_perm.uid = 1000;
	sds.shm_perm.gid = 1001;
	MUST(shmctl(shm_a, IPC_SET, &sds) == 0);

	MUST((shm_b = shmget(IPC_PRIVATE, PAGE, IPC_CREAT | 0600)) >= 0);
	MUST((tmp = shmat(shm_b, NULL, 0)) != (void *)-1);
	fill(tmp, 2, 0, PAGE);
	MUST(shmdt(tmp) == 0);
	MUST((at_b1 = shmat(shm_b, NULL, SHM_RDONLY)) != (void *)-1);
	MUST((at_b2 = shmat(shm_b, NULL, SHM_RDONLY)) != (void *)-1);

	MUST((shm_c = shmget(0x1236, 2 * PAGE, IPC_CREAT | 0666)) >= 0);
	MUST((tmp = shmat(shm_c, NULL, 0)) != (void *)-1);
	fill(tmp, 3, 0, 2 * PAGE);
	MUST(shmdt(tmp) == 0);

	MUST((shm_d = shmget(0x1237, PAGE, IPC_CREAT | 0600)) >= 0);
	MUST((at_d = shmat(shm_d, NULL, 0)) != (void *)-1);
	fill(at_d, 4, 0, PAGE);
	MUST(shmctl(shm_d, IPC_RMID, NULL) == 0);

	write_file("/proc/sys/kernel/sem_next_id", "77");
	MUST((sem_id = semget(0x2345, 5, IPC_CREAT | IPC_EXCL | 0600)) == 77);
	arg.array = vals;
	MUST(semctl(sem_id, 0, SETALL, arg) == 0);

	{
		pid_t kid = fork();
		int st;

		MUST(kid >= 0);
		if (kid == 0) {
			if (setresgid(1001, 1001, 1001) || setresuid(1000, 1000, 1000) || semget(0x2346, 2, IPC_CREAT | 0666) < 0 ||
			    shmget(0x1239, PAGE, IPC_CREAT | 0666) < 0)
				_exit(1);
			_exit(0);
		}
		MUST(waitpid(kid, &st, 0) == kid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
		MUST((sem_other = semget(0x2346, 2, 0)) >= 0);
		MUST((shm_e = shmget(0x1239, PAGE, 0)) >= 0);
		MUST(shmat(shm_e, NULL, SHM_RDONLY) != (void *)-1);
	}
	MUST((sem_wait = semget(0x2347, 1, IPC_CREAT | 0600)) >= 0);
	waiter = fork();
	MUST(waiter >= 0);
	if (waiter == 0) {
		struct sembuf op = { .sem_num = 0, .sem_op = -1 };

		while (semop(sem_wait, &op, 1) < 0)
			if (errno != EINTR)
				_exit(3);
		at_a[PAGE + 7] = 0xab;
		_exit(0);
	}

	MUST((msg_id = msgget(0x3456, IPC_CREAT | 0620)) >= 0);
	MUST(msgctl(msg_id, IPC_STAT, &mds) == 0);
	mds.msg_qbytes = 4000;
	MUST(msgctl(msg_id, IPC_SET, &mds) == 0);
	for (int i = 0; i < 3; i++) {
		struct msg m = { .type = msg_types[i] };

		for (size_t j = 0; j < msg_sizes[i]; j++)
			m.text[j] = byte_of(10 + i, j);
		MUST(msgsnd(msg_id, &m, msg_sizes[i], IPC_NOWAIT) == 0);
	}
	MUST((msg_empty = msgget(IPC_PRIVATE, IPC_CREAT | 0666)) >= 0);
	write_file("/proc/sys/kernel/shm_rmid_forced", "1");
}

static void check_shm_perm(const char *what, int id, key_t key, unsigned mode, uid_t uid, gid_t gid, size_t size, int nattch)
{
	struct shmid_ds ds;

	if (shmctl(id, IPC_STAT, &ds)) {
		failf("%s: shmctl(%d, IPC_STAT): %s", what, id, strerror(errno));
		return;
	}
	if (ds.shm_perm.__key != key || (ds.shm_perm.mode & 0777) != mode || ds.shm_perm.uid != uid || ds.shm_perm.gid != gid ||
	    ds.shm_segsz != size || (int)ds.shm_nattch != nattch)
		failf("%s: key %#x mode %o uid %u gid %u size %zu nattch %d, want %#x %o %u %u %zu %d", what, ds.shm_perm.__key,
		      ds.shm_perm.mode & 0777, ds.shm_perm.uid, ds.shm_perm.gid, ds.shm_segsz, (int)ds.shm_nattch, key, mode, uid, gid,
		      size, nattch);
}

static void check_ipc(int corrupt)
{
	union semun arg;
	unsigned short vals[5];
	struct semid_ds sds;
	struct msqid_ds mds;
	unsigned char *p;
	char buf[256];

	if (corrupt) {
		arg.val = 9;
		semctl(sem_id, 2, SETVAL, arg);
	}
	for (size_t i = 0; i < NSYSCTLS; i++) {
		read_file(sysctls[i][0], buf, sizeof(buf));
		if (strcmp(buf, sysctls[i][1]))
			failf("%s is \"%s\", want \"%s\"", sysctls[i][0], buf, sysctls[i][1]);
	}

	check_shm_perm("shm A", shm_a, 0x1234, 0640, 1000, 1001, SIZE_A, 2);
	check_bytes("shm A as attached", at_a, 1, 0, PAGE);
	check_zero("shm A as attached", at_a, PAGE, 2 * PAGE);
	check_bytes("shm A as attached", at_a, 1, 2 * PAGE, SIZE_A);
	check_zero("shm A past its size", at_a, SIZE_A, 4 * PAGE);
	at_a[5] ^= 0xff; /* writable still, and the same segment as a new attachment */
	if ((p = shmat(shm_a, NULL, SHM_RDONLY)) == (void *)-1) {
		failf("shmat(shm A): %s", strerror(errno));
	} else {
		if (p[5] != at_a[5])
			failf("shm A: a new attachment does not see a write through the old one");
		shmdt(p);
	}
	at_a[5] ^= 0xff;

	check_shm_perm("shm B", shm_b, IPC_PRIVATE, 0600, 0, 0, PAGE, 4); /* the child has them too */
	check_bytes("shm B (1st)", at_b1, 2, 0, PAGE);
	check_bytes("shm B (2nd)", at_b2, 2, 0, PAGE);

	check_shm_perm("shm C", shm_c, 0x1236, 0666, 0, 0, 2 * PAGE, 0);
	if ((p = shmat(shm_c, NULL, 0)) == (void *)-1) {
		failf("shmat(shm C): %s", strerror(errno));
	} else {
		check_bytes("shm C", p, 3, 0, 2 * PAGE);
		shmdt(p);
	}

	check_shm_perm("shm D (destroyed)", shm_d, IPC_PRIVATE, 0600, 0, 0, PAGE, 2);
	{
		struct shmid_ds ds;

		if (shmctl(shm_d, IPC_STAT, &ds) == 0 && !(ds.shm_perm.mode & SHM_DEST))
			failf("shm D is no longer marked for destruction");
	}
	check_bytes("shm D", at_d, 4, 0, PAGE);
	if (shmget(0x1237, PAGE, 0) >= 0)
		failf("shm D can be found by its key again");

	{
		struct shmid_ds ds;

		if (shmctl(shm_e, IPC_STAT, &ds))
			failf("shm E: %s", strerror(errno));
		else if (ds.shm_perm.cuid != 1000 || ds.shm_perm.cgid != 1001 || ds.shm_perm.uid != 1000 || ds.shm_perm.__key != 0x1239)
			failf("shm E made by uid 1000: cuid %u cgid %u uid %u key %#x", ds.shm_perm.cuid, ds.shm_perm.cgid, ds.shm_perm.uid,
			      ds.shm_perm.__key);
	}

	if (semctl(sem_id, 0, IPC_STAT, (union semun){ .buf = &sds }))
		failf("semctl(%d, IPC_STAT): %s", sem_id, strerror(errno));
	else if (sds.sem_perm.__key != 0x2345 || (sds.sem_perm.mode & 0777) != 0600 || sds.sem_nsems != 5)
		failf("sem: key %#x mode %o nsems %lu", sds.sem_perm.__key, sds.sem_perm.mode & 0777, (unsigned long)sds.sem_nsems);
	arg.array = vals;
	if (semctl(sem_id, 0, GETALL, arg))
		failf("semctl(GETALL): %s", strerror(errno));
	else if (vals[0] != 1 || vals[1] != 2 || vals[2] != 3 || vals[3] != 4 || vals[4] != 30000)
		failf("semaphores are %u %u %u %u %u, want 1 2 3 4 30000", vals[0], vals[1], vals[2], vals[3], vals[4]);

	if (semctl(sem_other, 0, IPC_STAT, (union semun){ .buf = &sds }))
		failf("semctl(%d, IPC_STAT): %s", sem_other, strerror(errno));
	else if (sds.sem_perm.cuid != 1000 || sds.sem_perm.cgid != 1001 || sds.sem_perm.uid != 1000 || sds.sem_perm.gid != 1001 ||
		 (sds.sem_perm.mode & 0777) != 0666)
		failf("the set made by uid 1000: cuid %u cgid %u uid %u gid %u mode %o", sds.sem_perm.cuid, sds.sem_perm.cgid,
		      sds.sem_perm.uid, sds.sem_perm.gid, sds.sem_perm.mode & 0777);

	if (msgctl(msg_id, IPC_STAT, &mds))
		failf("msgctl(%d, IPC_STAT): %s", msg_id, strerror(errno));
	else if (mds.msg_perm.__key != 0x3456 || (mds.msg_perm.mode & 0777) != 0620 || mds.msg_qbytes != 4000 || mds.msg_qnum != 3)
		failf("msg: key %#x mode %o qbytes %lu qnum %lu", mds.msg_perm.__key, mds.msg_perm.mode & 0777,
		      (unsigned long)mds.msg_qbytes, (unsigned long)mds.msg_qnum);
	for (int i = 0; i < 3; i++) {
		struct msg m;
		ssize_t n = msgrcv(msg_id, &m, sizeof(m.text), 0, IPC_NOWAIT);

		if (n < 0) {
			failf("message %d: %s", i, strerror(errno));
			break;
		}
		if (m.type != msg_types[i] || (size_t)n != msg_sizes[i])
			failf("message %d: type %ld size %zd, want %ld %zu", i, m.type, n, msg_types[i], msg_sizes[i]);
		for (ssize_t j = 0; j < n; j++) {
			if ((unsigned char)m.text[j] != byte_of(10 + i, j)) {
				failf("message %d: byte %zd differs", i, j);
				break;
			}
		}
	}
	if (msgctl(msg_empty, IPC_STAT, &mds))
		failf("msgctl(%d, IPC_STAT): %s", msg_empty, strerror(errno));
	else if (mds.msg_perm.__key != IPC_PRIVATE || (mds.msg_perm.mode & 0777) != 0666 || mds.msg_qnum != 0 || mds.msg_qbytes != 20000)
		failf("empty msg queue: key %#x mode %o qnum %lu qbytes %lu", mds.msg_perm.__key, mds.msg_perm.mode & 0777,
		      (unsigned long)mds.msg_qnum, (unsigned long)mds.msg_qbytes);

	/* Last: the child blocked in semop() is let go and writes into shm A. */
	{
		struct sembuf op = { .sem_num = 0, .sem_op = 1 };
		int st;

		if (semop(sem_wait, &op, 1))
			failf("semop(+1): %s", strerror(errno));
		if (waitpid(waiter, &st, 0) != waiter || !WIFEXITED(st) || WEXITSTATUS(st))
			failf("the child in semop() ended with status %#x", st);
		else if (at_a[PAGE + 7] != 0xab)
			failf("the child's write into shm A is not seen by its parent");
	}
}

int main(int argc, char **argv)
{
	const char *mode = argc > 2 ? argv[2] : "own";
	char buf[128];

	prog_init();
	if (!strcmp(mode, "child")) {
		pid_t kid = fork();

		MUST(kid >= 0);
		if (kid == 0) {
			MUST(unshare(CLONE_NEWUTS) == 0);
			MUST(sethostname("cryo-nested", 11) == 0);
			for (;;)
				pause();
		}
		prog_ready();
		wait_for_signal();
		kill(kid, SIGKILL);
		waitpid(kid, NULL, 0);
		return prog_finish();
	}
	if (!strcmp(mode, "hostshm") || !strcmp(mode, "host")) {
		int id = shmget(IPC_PRIVATE, PAGE, IPC_CREAT | 0600);

		MUST(id >= 0);
		if (!strcmp(mode, "hostshm")) {
			MUST(shmat(id, NULL, 0) != (void *)-1);
			/* Gone from the host's namespace once this task detaches (dies). */
			MUST(shmctl(id, IPC_RMID, NULL) == 0);
		} else {
			MUST((sem_id = semget(IPC_PRIVATE, 1, IPC_CREAT | 0600)) >= 0);
			printf("HOSTIPC %d %d\n", id, sem_id);
		}
		prog_ready();
		wait_for_signal();
		if (!strcmp(mode, "host")) {
			shmctl(id, IPC_RMID, NULL);
			semctl(sem_id, 0, IPC_RMID);
		}
		return prog_finish();
	}

	if (strcmp(mode, "given"))
		MUST(unshare(CLONE_NEWUTS | CLONE_NEWIPC) == 0);
	MUST(sethostname("cryo-uts-test", 13) == 0);
	MUST(setdomainname("cryo.example", 12) == 0);
	setup_ipc();
	int mq = !strncmp(mode, "mq", 2);
	mqd_t held = -1;
	if (mq) {
		struct mq_attr a = { .mq_maxmsg = 4, .mq_msgsize = 64 };
		mqd_t q = mq_open("/cryo-mq", O_CREAT | O_EXCL | O_RDWR, 0600, &a);

		MUST(q >= 0);
		MUST(fchmod(q, 0640) == 0 && fchown(q, 1000, 1001) == 0);
		MUST(mq_send(q, "first", 5, 5) == 0 && mq_send(q, "low", 3, 1) == 0 && mq_send(q, "second", 6, 5) == 0);
		if (!strcmp(mode, "mqnotify")) {
			struct sigevent ev = { .sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGUSR1 };
			MUST(mq_notify(q, &ev) == 0);
		} else if (strcmp(mode, "mqfd")) {
			mq_close(q); /* the queue stays, on the namespace's mqueue mount */
		} else {
			struct mq_attr nb = { .mq_flags = O_NONBLOCK };
			MUST(mq_setattr(q, &nb, NULL) == 0);
			held = q;
		}
		MUST((q = mq_open("/cryo-empty", O_CREAT | O_EXCL | O_RDWR, 0666, NULL)) >= 0);
		MUST(fchmod(q, 0666) == 0);
		mq_close(q);
	}
	prog_ready();
	int corrupt = wait_for_signal();

	if (held >= 0) {
		/* The descriptor kept: the same queue, still non-blocking, its messages there. */
		struct mq_attr a;
		struct stat hs, ns;
		mqd_t q = mq_open("/cryo-mq", O_RDONLY);

		if (mq_getattr(held, &a) || fstat(held, &hs) || q < 0 || fstat(q, &ns))
			failf("the kept /cryo-mq descriptor: %s", strerror(errno));
		else if (hs.st_ino != ns.st_ino || hs.st_dev != ns.st_dev || !(a.mq_flags & O_NONBLOCK) || a.mq_curmsgs != 3)
			failf("the kept /cryo-mq descriptor: inode %lu (the queue's %lu), flags %lx, %ld queued", (unsigned long)hs.st_ino, (unsigned long)ns.st_ino, a.mq_flags, a.mq_curmsgs);
		if (q >= 0)
			mq_close(q);
	}
	if (mq) {
		const char *want[] = { "first", "second", "low" };
		const unsigned prios[] = { 5, 5, 1 };
		struct mq_attr a;
		struct stat st;
		char m[64];
		unsigned prio;
		mqd_t q = mq_open("/cryo-mq", O_RDONLY | O_NONBLOCK);

		if (q < 0 || mq_getattr(q, &a) || fstat(q, &st))
			failf("/cryo-mq: %s", strerror(errno));
		else {
			if (a.mq_maxmsg != 4 || a.mq_msgsize != 64 || a.mq_curmsgs != 3)
				failf("/cryo-mq: %ld messages of %ld bytes at most, %ld queued", a.mq_maxmsg, a.mq_msgsize, a.mq_curmsgs);
			if ((st.st_mode & 07777) != 0640 || st.st_uid != 1000 || st.st_gid != 1001)
				failf("/cryo-mq: mode %o, owner %d:%d", st.st_mode & 07777, st.st_uid, st.st_gid);
			for (int i = 0; i < 3; i++) {
				ssize_t n = mq_receive(q, m, sizeof(m), &prio);
				if (n < 0 || (size_t)n != strlen(want[i]) || memcmp(m, want[i], n) || prio != prios[i])
					failf("/cryo-mq: message %d is \"%.*s\" (priority %u), want \"%s\" (%u)", i, (int)(n < 0 ? 0 : n), m, prio, want[i], prios[i]);
			}
			mq_close(q);
		}
		q = mq_open("/cryo-empty", O_RDONLY | O_NONBLOCK);
		if (q < 0 || mq_getattr(q, &a) || fstat(q, &st))
			failf("/cryo-empty: %s", strerror(errno));
		else if (a.mq_maxmsg != 10 || a.mq_msgsize != 8192 || a.mq_curmsgs != 0 || (st.st_mode & 07777) != 0666)
			failf("/cryo-empty: %ld messages of %ld bytes, %ld queued, mode %o", a.mq_maxmsg, a.mq_msgsize, a.mq_curmsgs, st.st_mode & 07777);
		if (q >= 0)
			mq_close(q);
	}
	if (held >= 0) {
		/* The queue read out above: the kept descriptor sends and receives, and does not block. */
		char m[64];
		unsigned prio;

		if (mq_send(held, "kept", 4, 2) || mq_receive(held, m, sizeof(m), &prio) != 4 || memcmp(m, "kept", 4) || prio != 2)
			failf("the kept /cryo-mq descriptor does not send and receive: %s", strerror(errno));
		else if (mq_receive(held, m, sizeof(m), &prio) != -1 || errno != EAGAIN)
			failf("the kept /cryo-mq descriptor blocks or has more: %s", strerror(errno));
	}

	if (gethostname(buf, sizeof(buf)) || strcmp(buf, "cryo-uts-test"))
		failf("host name is \"%s\", want cryo-uts-test", buf);
	if (getdomainname(buf, sizeof(buf)) || strcmp(buf, "cryo.example"))
		failf("domain name is \"%s\", want cryo.example", buf);
	check_ipc(corrupt);
	return prog_finish();
}
