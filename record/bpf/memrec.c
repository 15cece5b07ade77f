// SPDX-License-Identifier: GPL-2.0
// memdiag record: allocator calls (uprobes) and mapping system calls
// (BTF raw tracepoints) of one process, sent to user space through a ring
// buffer. Only the few kernel types used are declared here, with CO-RE
// relocations (preserve_access_index), so no vmlinux.h or kernel headers
// are needed; the kernel's BTF fixes the offsets at load.

#include <linux/types.h>
#include <linux/bpf.h>

typedef __u8 u8;
typedef __u32 u32;
typedef __s32 s32;
typedef __u64 u64;
typedef __s64 s64;

#ifndef __TARGET_ARCH_x86
#define __TARGET_ARCH_x86
#endif
// The kernel's register names (di, not rdi) in bpf_tracing.h.
#define __VMLINUX_H__
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

// The user registers a syscall was entered with: the x86-64 layout, read
// through CO-RE so that a kernel with another layout is relocated.
struct pt_regs {
	unsigned long di, si, dx, cx, r10, r8, r9, ax, ip, sp, bp;
} __attribute__((preserve_access_index));

// The ids of a task, for the fork and exec tracepoints.
struct task_struct {
	int pid;
	int tgid;
} __attribute__((preserve_access_index));

char LICENSE[] SEC("license") = "GPL";

#define MAX_STACK_DEPTH 64

// Set by the loader before load.
const volatile u8 follow_forks = 0; // add a recorded process's children to targets
const volatile u64 min_size = 0;
const volatile u64 sample_bytes = 0; // 0: every allocation
const volatile u64 wake_bytes = 0;   // wake the reader past this much data

enum fn {
	FN_MALLOC = 1, FN_CALLOC, FN_REALLOC, FN_REALLOCARRAY, FN_POSIX_MEMALIGN,
	FN_ALIGNED_ALLOC, FN_MEMALIGN, FN_VALLOC, FN_PVALLOC, FN_FREE,
};

enum kind {
	EV_ALLOC = 1, EV_FREE, EV_MMAP, EV_MUNMAP, EV_MREMAP, EV_BRK, EV_EXEC, EV_FORK,
};

// Counter slots (per CPU; user space sums them).
enum counter {
	C_LOST_ALLOC, C_LOST_FREE, C_LOST_MAP, C_TRACK_FULL, C_PENDING_FULL,
	C_SKIPPED_SMALL, C_SKIPPED_SAMPLE, C_CALLS, C_SYSCALLS, C_LOST_FORK, C_COUNTERS,
};

struct event {
	u64 ts;     // completion, CLOCK_MONOTONIC ns
	u64 enter;  // entry, for system calls
	u64 addr;   // the pointer, the mapping's address, brk's result
	u64 size;   // bytes asked for; mapping length
	u64 arg1;   // mmap: prot; mremap: old address
	u64 arg2;   // mmap: flags; mremap: flags
	u64 arg3;   // mmap: fd; mremap: new length
	u64 arg4;   // mmap: offset; mremap: new address argument
	u32 tid;
	s32 stack_id; // < 0: the error bpf_get_stackid returned
	u8 kind;
	u8 fn;
	u8 pad[2];
	u32 tgid;   // the process; fork: the child (addr: the parent)
};

// A recorded pointer: parent and child share addresses after a fork.
struct track_key {
	u32 tgid;
	u32 pad;
	u64 ptr;
};

// The call in flight on a thread, between entry and return.
struct pending {
	u64 size;
	u64 memptr; // posix_memalign's out pointer
	u64 enter;
	u32 fn;
	u32 pad;
};

struct pending_sys {
	u64 args[6];
	u64 enter;
	u32 nr;
	u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 24); // resized by the loader
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(key_size, sizeof(u32));
	__uint(value_size, MAX_STACK_DEPTH * sizeof(u64));
	__uint(max_entries, 16384); // resized by the loader
} stacks SEC(".maps");

// The processes recorded (tgid → 1): filled by the loader, and by
// sched_process_fork with their children when following forks.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, u32);
	__type(value, u8);
	__uint(max_entries, 4096);
} targets SEC(".maps");

// Pointers recorded and not yet freed: only their frees are sent.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct track_key);
	__type(value, u64);
	__uint(max_entries, 1 << 20); // resized by the loader
	__uint(map_flags, BPF_F_NO_PREALLOC); // kernel memory as used, not at load
} tracked SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, u64);
	__type(value, struct pending);
	__uint(max_entries, 16384);
} pending SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, u64);
	__type(value, struct pending_sys);
	__uint(max_entries, 16384);
} pending_sys SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, u32);
	__type(value, u64);
	__uint(max_entries, C_COUNTERS);
} counters SEC(".maps");

// Sampling: bytes left before the next sample, per CPU, and a table of
// exponentially distributed intervals (mean sample_bytes) filled by the
// loader, so that no logarithm is needed here.
#define INTERVALS 1024
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, u32);
	__type(value, s64);
	__uint(max_entries, 1);
} sample_left SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, u32);
	__type(value, u64);
	__uint(max_entries, INTERVALS);
} intervals SEC(".maps");

static __always_inline void count(u32 slot)
{
	u64 *v = bpf_map_lookup_elem(&counters, &slot);
	if (v)
		*v += 1;
}

static __always_inline int ours(void)
{
	u32 tgid = bpf_get_current_pid_tgid() >> 32;
	return bpf_map_lookup_elem(&targets, &tgid) != 0;
}

// new_event reserves an event in the ring buffer, zeroed and stamped; when
// the buffer is full it counts the loss in slot lost and returns NULL.
static __always_inline struct event *new_event(u32 lost)
{
	struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count(lost);
		return 0;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->ts = bpf_ktime_get_ns();
	return e;
}

static __always_inline u64 wake_flags(void)
{
	if (bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wake_bytes)
		return BPF_RB_FORCE_WAKEUP;
	return BPF_RB_NO_WAKEUP;
}

// sampled decides whether an allocation of size bytes is recorded when
// sampling: a countdown of bytes per CPU, reset to a fresh exponential
// interval at each sample, so that an allocation is sampled with
// probability 1 - exp(-size/sample_bytes), as tcmalloc samples.
static __always_inline int sampled(u64 size)
{
	if (sample_bytes == 0)
		return 1;
	u32 zero = 0;
	s64 *left = bpf_map_lookup_elem(&sample_left, &zero);
	if (!left)
		return 0;
	*left -= (s64)size;
	if (*left > 0)
		return 0;
	u32 i = bpf_get_prandom_u32() % INTERVALS;
	u64 *next = bpf_map_lookup_elem(&intervals, &i);
	*left = next ? (s64)*next : (s64)sample_bytes;
	return 1;
}

static __always_inline int enter(u32 fn, u64 size, u64 memptr)
{
	if (!ours())
		return 0;
	count(C_CALLS);
	u64 id = bpf_get_current_pid_tgid();
	u64 now = bpf_ktime_get_ns();
	// A nested call (realloc(NULL, n) calling malloc) leaves the outer
	// call's entry in place; its return is matched by fn. An entry older
	// than a second lost its return (the kernel can miss a uretprobe): it
	// is replaced, or the thread would never be recorded again.
	struct pending *old = bpf_map_lookup_elem(&pending, &id);
	if (old && now - old->enter < 1000000000ULL)
		return 0;
	struct pending p = {.size = size, .memptr = memptr, .enter = now, .fn = fn};
	if (bpf_map_update_elem(&pending, &id, &p, BPF_ANY))
		count(C_PENDING_FULL);
	return 0;
}

static __always_inline void send_free(u64 ptr, u32 fn)
{
	if (ptr == 0)
		return;
	u64 id = bpf_get_current_pid_tgid();
	struct track_key k = {.tgid = id >> 32, .ptr = ptr};
	if (bpf_map_delete_elem(&tracked, &k))
		return; // not recorded (before the recording, too small, not sampled)
	struct event *e = new_event(C_LOST_FREE);
	if (!e)
		return;
	e->addr = ptr;
	e->tid = (u32)id;
	e->tgid = id >> 32;
	e->kind = EV_FREE;
	e->fn = fn;
	bpf_ringbuf_submit(e, wake_flags());
}

static __always_inline int leave(struct pt_regs *ctx, u32 fn, u64 ret)
{
	if (!ours())
		return 0;
	u64 id = bpf_get_current_pid_tgid();
	struct pending *p = bpf_map_lookup_elem(&pending, &id);
	if (!p || p->fn != fn)
		return 0;
	u64 size = p->size, memptr = p->memptr;
	bpf_map_delete_elem(&pending, &id);
	if (fn == FN_POSIX_MEMALIGN) {
		if (ret != 0)
			return 0; // failed: *memptr is untouched
		u64 ptr = 0;
		if (bpf_probe_read_user(&ptr, sizeof(ptr), (void *)memptr))
			return 0;
		ret = ptr;
	}
	if (ret == 0)
		return 0;
	if (size < min_size) {
		count(C_SKIPPED_SMALL);
		return 0;
	}
	if (!sampled(size)) {
		count(C_SKIPPED_SAMPLE);
		return 0;
	}
	struct event *e = new_event(C_LOST_ALLOC);
	if (!e)
		return 0; // not tracked either: its free is not sent
	e->addr = ret;
	e->size = size;
	e->tid = (u32)id;
	e->tgid = id >> 32;
	e->kind = EV_ALLOC;
	e->fn = fn;
	e->stack_id = bpf_get_stackid(ctx, &stacks, BPF_F_USER_STACK);
	struct track_key k = {.tgid = id >> 32, .ptr = ret};
	if (bpf_map_update_elem(&tracked, &k, &size, BPF_ANY))
		count(C_TRACK_FULL);
	bpf_ringbuf_submit(e, wake_flags());
	return 0;
}

// n * size: an overflowing product makes calloc fail (NULL), and a failed
// call is not recorded.
static __always_inline u64 mul(u64 n, u64 size) { return n * size; }

SEC("uprobe") int BPF_KPROBE(malloc_enter, u64 size) { return enter(FN_MALLOC, size, 0); }
SEC("uretprobe") int BPF_KRETPROBE(malloc_leave, u64 ret) { return leave(ctx, FN_MALLOC, ret); }

SEC("uprobe") int BPF_KPROBE(calloc_enter, u64 n, u64 size) { return enter(FN_CALLOC, mul(n, size), 0); }
SEC("uretprobe") int BPF_KRETPROBE(calloc_leave, u64 ret) { return leave(ctx, FN_CALLOC, ret); }

// realloc frees its old block at entry: the block may be reused by another
// thread before realloc returns. A failed realloc (rare) is then missed.
SEC("uprobe") int BPF_KPROBE(realloc_enter, u64 ptr, u64 size)
{
	if (!ours())
		return 0;
	send_free(ptr, FN_REALLOC);
	return enter(FN_REALLOC, size, 0);
}
SEC("uretprobe") int BPF_KRETPROBE(realloc_leave, u64 ret) { return leave(ctx, FN_REALLOC, ret); }

SEC("uprobe") int BPF_KPROBE(reallocarray_enter, u64 ptr, u64 n, u64 size)
{
	if (!ours())
		return 0;
	send_free(ptr, FN_REALLOCARRAY);
	return enter(FN_REALLOCARRAY, mul(n, size), 0);
}
SEC("uretprobe") int BPF_KRETPROBE(reallocarray_leave, u64 ret) { return leave(ctx, FN_REALLOCARRAY, ret); }

SEC("uprobe") int BPF_KPROBE(posix_memalign_enter, u64 memptr, u64 align, u64 size) { return enter(FN_POSIX_MEMALIGN, size, memptr); }
SEC("uretprobe") int BPF_KRETPROBE(posix_memalign_leave, u64 ret) { return leave(ctx, FN_POSIX_MEMALIGN, ret); }

SEC("uprobe") int BPF_KPROBE(aligned_alloc_enter, u64 align, u64 size) { return enter(FN_ALIGNED_ALLOC, size, 0); }
SEC("uretprobe") int BPF_KRETPROBE(aligned_alloc_leave, u64 ret) { return leave(ctx, FN_ALIGNED_ALLOC, ret); }

SEC("uprobe") int BPF_KPROBE(memalign_enter, u64 align, u64 size) { return enter(FN_MEMALIGN, size, 0); }
SEC("uretprobe") int BPF_KRETPROBE(memalign_leave, u64 ret) { return leave(ctx, FN_MEMALIGN, ret); }

SEC("uprobe") int BPF_KPROBE(valloc_enter, u64 size) { return enter(FN_VALLOC, size, 0); }
SEC("uretprobe") int BPF_KRETPROBE(valloc_leave, u64 ret) { return leave(ctx, FN_VALLOC, ret); }

SEC("uprobe") int BPF_KPROBE(pvalloc_enter, u64 size) { return enter(FN_PVALLOC, size, 0); }
SEC("uretprobe") int BPF_KRETPROBE(pvalloc_leave, u64 ret) { return leave(ctx, FN_PVALLOC, ret); }

SEC("uprobe") int BPF_KPROBE(free_enter, u64 ptr)
{
	if (!ours())
		return 0;
	count(C_CALLS);
	send_free(ptr, FN_FREE);
	return 0;
}

// x86-64 system call numbers of the calls replayed.
#define NR_MMAP 9
#define NR_MUNMAP 11
#define NR_BRK 12
#define NR_MREMAP 25

// exec is not among them: sched_process_exec reports it, because an exec
// from a thread other than the leader returns as the leader (the kernel
// gives it the leader's id), so its sys_exit would not match its sys_enter.
static __always_inline int watched(long nr)
{
	return nr == NR_MMAP || nr == NR_MUNMAP || nr == NR_BRK || nr == NR_MREMAP;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(sys_enter, struct pt_regs *regs, long nr)
{
	if (!watched(nr) || !ours())
		return 0;
	u64 id = bpf_get_current_pid_tgid();
	struct pending_sys p = {.enter = bpf_ktime_get_ns(), .nr = (u32)nr};
	p.args[0] = BPF_CORE_READ(regs, di);
	p.args[1] = BPF_CORE_READ(regs, si);
	p.args[2] = BPF_CORE_READ(regs, dx);
	p.args[3] = BPF_CORE_READ(regs, r10);
	p.args[4] = BPF_CORE_READ(regs, r8);
	p.args[5] = BPF_CORE_READ(regs, r9);
	if (bpf_map_update_elem(&pending_sys, &id, &p, BPF_ANY))
		count(C_PENDING_FULL);
	return 0;
}

SEC("tp_btf/sys_exit")
int BPF_PROG(sys_exit, struct pt_regs *regs, long ret)
{
	if (!ours())
		return 0;
	u64 id = bpf_get_current_pid_tgid();
	struct pending_sys *p = bpf_map_lookup_elem(&pending_sys, &id);
	if (!p)
		return 0;
	struct pending_sys c = *p;
	bpf_map_delete_elem(&pending_sys, &id);
	count(C_SYSCALLS);
	if (ret < 0 && ret > -4096)
		return 0; // failed: nothing changed
	struct event *e = new_event(C_LOST_MAP);
	if (!e)
		return 0;
	e->enter = c.enter;
	e->tid = (u32)id;
	e->tgid = id >> 32;
	e->stack_id = -1;
	switch (c.nr) {
	case NR_MMAP:
		e->kind = EV_MMAP;
		e->addr = (u64)ret;
		e->size = c.args[1];
		e->arg1 = c.args[2];
		e->arg2 = c.args[3];
		e->arg3 = c.args[4];
		e->arg4 = c.args[5];
		e->stack_id = bpf_get_stackid(ctx, &stacks, BPF_F_USER_STACK);
		break;
	case NR_MUNMAP:
		e->kind = EV_MUNMAP;
		e->addr = c.args[0];
		e->size = c.args[1];
		break;
	case NR_MREMAP:
		e->kind = EV_MREMAP;
		e->addr = (u64)ret;
		e->arg1 = c.args[0];
		e->size = c.args[1];
		e->arg3 = c.args[2];
		e->arg2 = c.args[3];
		e->arg4 = c.args[4];
		e->stack_id = bpf_get_stackid(ctx, &stacks, BPF_F_USER_STACK);
		break;
	default:
		e->kind = EV_BRK;
		e->addr = (u64)ret;
		e->arg1 = c.args[0];
		break;
	}
	// A library mapped executable: user space reads the process's maps for
	// its symbols at once, before it may exit.
	if (e->kind == EV_MMAP && (e->arg1 & 4 /* PROT_EXEC */) && (s64)e->arg3 >= 0)
		bpf_ringbuf_submit(e, BPF_RB_FORCE_WAKEUP);
	else
		bpf_ringbuf_submit(e, wake_flags());
	return 0;
}

// A new image: user space forgets the old one's allocations and reads the
// new one's maps at once, before it may exit. old_pid is the thread that
// called exec, which now has the leader's id.
SEC("tp_btf/sched_process_exec")
int BPF_PROG(sched_process_exec, struct task_struct *p, int old_pid)
{
	u32 tgid = BPF_CORE_READ(p, tgid);
	if (!bpf_map_lookup_elem(&targets, &tgid))
		return 0;
	struct event *e = new_event(C_LOST_MAP);
	if (!e)
		return 0;
	e->tid = tgid;
	e->tgid = tgid;
	e->arg3 = (u32)old_pid;
	e->stack_id = -1;
	e->kind = EV_EXEC;
	// The new program's name, in arg1 and arg2 (16 bytes).
	bpf_get_current_comm(&e->arg1, 2 * sizeof(u64));
	bpf_ringbuf_submit(e, BPF_RB_FORCE_WAKEUP);
	return 0;
}

// A recorded process forked: the child (a process, not a thread) is
// recorded too. Its uprobes are attached by user space, woken at once: the
// allocator calls it makes until then are not seen.
SEC("tp_btf/sched_process_fork")
int BPF_PROG(sched_process_fork, struct task_struct *parent, struct task_struct *child)
{
	if (!follow_forks)
		return 0;
	u32 ptgid = BPF_CORE_READ(parent, tgid);
	u32 pid = BPF_CORE_READ(child, pid), tgid = BPF_CORE_READ(child, tgid);
	if (pid != tgid || !bpf_map_lookup_elem(&targets, &ptgid))
		return 0;
	u8 one = 1;
	if (bpf_map_update_elem(&targets, &tgid, &one, BPF_ANY)) {
		count(C_LOST_FORK); // the table of processes is full: not followed
		return 0;
	}
	struct event *e = new_event(C_LOST_FORK);
	if (!e) {
		bpf_map_delete_elem(&targets, &tgid);
		return 0;
	}
	e->tid = tgid;
	e->tgid = tgid;
	e->addr = ptgid;
	e->stack_id = -1;
	e->kind = EV_FORK;
	bpf_ringbuf_submit(e, BPF_RB_FORCE_WAKEUP);
	return 0;
}

// Emits struct event into the object's BTF, for bpf2go's Go type.
const struct event *unused_event __attribute__((unused));
