// Public API of the image layer: the kinds table, the codec, ImageDir, and every
// generated message type and schema (CRIU message name in snake_case -> PascalCase,
// e.g. core_entry -> CoreEntry / CoreEntrySchema; see src/images/proto/README.md).
export { create, clone, equals, isFieldSet, clearField, toBinary, fromBinary } from '@bufbuild/protobuf';
export type { Message, MessageShape, MessageInitShape } from '@bufbuild/protobuf';
export { ImageError, IMAGE_ERROR_CODES, type ImageErrorCode } from './errors.js';
export * from './magic.js';
export * from './consts.js';
export {
  DEFAULT_MAX_ENTRY_SIZE,
  checkHeader,
  decodeImage,
  encodeEntry,
  encodeImage,
  headerBytes,
  identify,
  missingRequired,
  type DecodeOptions,
  type Entry,
} from './codec.js';
export { ImageDir, IMAGE_FILE_MODE, type ImageDirOptions, type ImageWriter } from './imgdir.js';
export * from './gen/apparmor_pb.js';
export * from './gen/autofs_pb.js';
export * from './gen/binfmt-misc_pb.js';
export * from './gen/bpfmap-data_pb.js';
export * from './gen/bpfmap-file_pb.js';
export * from './gen/cgroup_pb.js';
export * from './gen/core-aarch64_pb.js';
export * from './gen/core-arm_pb.js';
export * from './gen/core-loongarch64_pb.js';
export * from './gen/core-mips_pb.js';
export * from './gen/core-ppc64_pb.js';
export * from './gen/core-riscv64_pb.js';
export * from './gen/core-s390_pb.js';
export * from './gen/core-x86_pb.js';
export * from './gen/core_pb.js';
export * from './gen/cpuinfo_pb.js';
export * from './gen/creds_pb.js';
export * from './gen/eventfd_pb.js';
export * from './gen/eventpoll_pb.js';
export * from './gen/ext-file_pb.js';
export * from './gen/fdinfo_pb.js';
export * from './gen/fh_pb.js';
export * from './gen/fifo_pb.js';
export * from './gen/file-lock_pb.js';
export * from './gen/fown_pb.js';
export * from './gen/fs_pb.js';
export * from './gen/fsnotify_pb.js';
export * from './gen/ghost-file_pb.js';
export * from './gen/img-streamer_pb.js';
export * from './gen/inventory_pb.js';
export * from './gen/ipc-desc_pb.js';
export * from './gen/ipc-msg_pb.js';
export * from './gen/ipc-sem_pb.js';
export * from './gen/ipc-shm_pb.js';
export * from './gen/ipc-var_pb.js';
export * from './gen/macvlan_pb.js';
export * from './gen/memfd_pb.js';
export * from './gen/mm_pb.js';
export * from './gen/mnt_pb.js';
export * from './gen/netdev_pb.js';
export * from './gen/ns_pb.js';
export * from './gen/opts_pb.js';
export * from './gen/packet-sock_pb.js';
export * from './gen/pagemap_pb.js';
export * from './gen/pidfd_pb.js';
export * from './gen/pidns_pb.js';
export * from './gen/pipe-data_pb.js';
export * from './gen/pipe_pb.js';
export * from './gen/pstree_pb.js';
export * from './gen/regfile_pb.js';
export * from './gen/remap-file-path_pb.js';
export * from './gen/rlimit_pb.js';
export * from './gen/rpc_pb.js';
export * from './gen/rseq_pb.js';
export * from './gen/sa_pb.js';
export * from './gen/seccomp_pb.js';
export * from './gen/siginfo_pb.js';
export * from './gen/signalfd_pb.js';
export * from './gen/sit_pb.js';
export * from './gen/sk-inet_pb.js';
export * from './gen/sk-netlink_pb.js';
export * from './gen/sk-opts_pb.js';
export * from './gen/sk-packet_pb.js';
export * from './gen/sk-unix_pb.js';
export * from './gen/stats_pb.js';
export * from './gen/sysctl_pb.js';
export * from './gen/tcp-stream_pb.js';
export * from './gen/time_pb.js';
export * from './gen/timens_pb.js';
export * from './gen/timer_pb.js';
export * from './gen/timerfd_pb.js';
export * from './gen/tty_pb.js';
export * from './gen/tun_pb.js';
export * from './gen/userns_pb.js';
export * from './gen/utsns_pb.js';
export * from './gen/vma_pb.js';
