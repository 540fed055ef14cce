/* The size of each struct cryo's src/abi codes, and the offset of each of its
 * fields, from the kernel's own headers: "S name size" and "F name field offset size". */
#include <stdio.h>
#include <stddef.h>
#include <linux/time.h>
#include <linux/time_types.h>
#include <asm/signal.h>
#include <asm-generic/siginfo.h>
#include <linux/resource.h>
#include <linux/sched.h>
#include <asm/fcntl.h>
#include <linux/capability.h>
#include <linux/prctl.h>
#include <linux/userfaultfd.h>
#include <linux/tcp.h>
#include <bits/types/struct_sched_param.h>

#define S(name, type) printf("S %s %zu\n", name, sizeof(type))
#define F(name, type, field) printf("F %s %s %zu %zu\n", name, #field, offsetof(type, field), sizeof(((type *)0)->field))
#define F2(name, type, field, member) printf("F %s %s %zu %zu\n", name, #field, offsetof(type, member), sizeof(((type *)0)->member))

int main(void)
{
	S("timespec", struct __kernel_timespec);
	F("timespec", struct __kernel_timespec, tv_sec);
	F("timespec", struct __kernel_timespec, tv_nsec);
	S("timeval", struct timeval);
	F("timeval", struct timeval, tv_sec);
	F("timeval", struct timeval, tv_usec);
	S("itimerspec", struct __kernel_itimerspec);
	F("itimerspec", struct __kernel_itimerspec, it_interval);
	F("itimerspec", struct __kernel_itimerspec, it_value);
	S("itimerval", struct itimerval);
	F("itimerval", struct itimerval, it_interval);
	F("itimerval", struct itimerval, it_value);

	S("stack_t", stack_t);
	F("stack_t", stack_t, ss_sp);
	F("stack_t", stack_t, ss_flags);
	F("stack_t", stack_t, ss_size);
	S("rlimit64", struct rlimit64);
	F("rlimit64", struct rlimit64, rlim_cur);
	F("rlimit64", struct rlimit64, rlim_max);
	S("sched_param", struct sched_param);
	F("sched_param", struct sched_param, sched_priority);

	S("kernel_sigaction", struct sigaction);
	F("kernel_sigaction", struct sigaction, sa_handler);
	F("kernel_sigaction", struct sigaction, sa_flags);
	F("kernel_sigaction", struct sigaction, sa_restorer);
	F("kernel_sigaction", struct sigaction, sa_mask);

	S("sigevent", struct sigevent);
	F("sigevent", struct sigevent, sigev_value);
	F("sigevent", struct sigevent, sigev_signo);
	F("sigevent", struct sigevent, sigev_notify);
	F2("sigevent", struct sigevent, sigev_notify_thread_id, _sigev_un._tid);

	S("clone_args", struct clone_args);
	F("clone_args", struct clone_args, flags);
	F("clone_args", struct clone_args, pidfd);
	F("clone_args", struct clone_args, child_tid);
	F("clone_args", struct clone_args, parent_tid);
	F("clone_args", struct clone_args, exit_signal);
	F("clone_args", struct clone_args, stack);
	F("clone_args", struct clone_args, stack_size);
	F("clone_args", struct clone_args, tls);
	F("clone_args", struct clone_args, set_tid);
	F("clone_args", struct clone_args, set_tid_size);
	F("clone_args", struct clone_args, cgroup);

	S("flock", struct flock);
	F("flock", struct flock, l_type);
	F("flock", struct flock, l_whence);
	F("flock", struct flock, l_start);
	F("flock", struct flock, l_len);
	F("flock", struct flock, l_pid);
	S("f_owner_ex", struct f_owner_ex);
	F("f_owner_ex", struct f_owner_ex, type);
	F("f_owner_ex", struct f_owner_ex, pid);

	S("__user_cap_header_struct", struct __user_cap_header_struct);
	F("__user_cap_header_struct", struct __user_cap_header_struct, version);
	F("__user_cap_header_struct", struct __user_cap_header_struct, pid);
	S("__user_cap_data_struct", struct __user_cap_data_struct);
	F("__user_cap_data_struct", struct __user_cap_data_struct, effective);
	F("__user_cap_data_struct", struct __user_cap_data_struct, permitted);
	F("__user_cap_data_struct", struct __user_cap_data_struct, inheritable);

	S("prctl_mm_map", struct prctl_mm_map);
	F("prctl_mm_map", struct prctl_mm_map, start_code);
	F("prctl_mm_map", struct prctl_mm_map, end_code);
	F("prctl_mm_map", struct prctl_mm_map, start_data);
	F("prctl_mm_map", struct prctl_mm_map, end_data);
	F("prctl_mm_map", struct prctl_mm_map, start_brk);
	F("prctl_mm_map", struct prctl_mm_map, brk);
	F("prctl_mm_map", struct prctl_mm_map, start_stack);
	F("prctl_mm_map", struct prctl_mm_map, arg_start);
	F("prctl_mm_map", struct prctl_mm_map, arg_end);
	F("prctl_mm_map", struct prctl_mm_map, env_start);
	F("prctl_mm_map", struct prctl_mm_map, env_end);
	F("prctl_mm_map", struct prctl_mm_map, auxv);
	F("prctl_mm_map", struct prctl_mm_map, auxv_size);
	F("prctl_mm_map", struct prctl_mm_map, exe_fd);

	S("tcp_repair_window", struct tcp_repair_window);
	F("tcp_repair_window", struct tcp_repair_window, snd_wl1);
	F("tcp_repair_window", struct tcp_repair_window, snd_wnd);
	F("tcp_repair_window", struct tcp_repair_window, max_window);
	F("tcp_repair_window", struct tcp_repair_window, rcv_wnd);
	F("tcp_repair_window", struct tcp_repair_window, rcv_wup);
	S("tcp_repair_opt", struct tcp_repair_opt);
	F("tcp_repair_opt", struct tcp_repair_opt, opt_code);
	F("tcp_repair_opt", struct tcp_repair_opt, opt_val);

	S("uffdio_api", struct uffdio_api);
	F("uffdio_api", struct uffdio_api, api);
	F("uffdio_api", struct uffdio_api, features);
	F("uffdio_api", struct uffdio_api, ioctls);
	S("uffdio_range", struct uffdio_range);
	F("uffdio_range", struct uffdio_range, start);
	F("uffdio_range", struct uffdio_range, len);
	S("uffdio_register", struct uffdio_register);
	F("uffdio_register", struct uffdio_register, range);
	F("uffdio_register", struct uffdio_register, mode);
	F("uffdio_register", struct uffdio_register, ioctls);
	S("uffdio_copy", struct uffdio_copy);
	F("uffdio_copy", struct uffdio_copy, dst);
	F("uffdio_copy", struct uffdio_copy, src);
	F("uffdio_copy", struct uffdio_copy, len);
	F("uffdio_copy", struct uffdio_copy, mode);
	F("uffdio_copy", struct uffdio_copy, copy);
	return 0;
}
