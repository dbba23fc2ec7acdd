// The few process-launch calls Swift cannot reach through Glibc's module: glibc 2.34+'s closefrom file
// action and 2.36's pidfd wrappers. Prefixed `cspawn_` so they never collide with libc names.
#ifndef CSPAWN_SHIM_H
#define CSPAWN_SHIM_H
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <unistd.h>

/// Close every descriptor from `from` upwards in the child (posix_spawn_file_actions_addclosefrom_np).
static inline int cspawn_addclosefrom(posix_spawn_file_actions_t *actions, int from) {
    return posix_spawn_file_actions_addclosefrom_np(actions, from);
}

/// A descriptor that becomes readable when the process exits (pidfd_open(2), Linux 5.3+); -1 with errno set.
static inline int cspawn_pidfd_open(pid_t pid) {
    return (int)syscall(SYS_pidfd_open, pid, 0);
}
/// pipe2(2) is declared only under _GNU_SOURCE, which the Glibc module is not built with.
extern int pipe2(int pipefd[2], int flags);

/// A pipe whose both ends are close-on-exec, so no other helper ever inherits them.
static inline int cspawn_pipe_cloexec(int fds[2]) {
    return pipe2(fds, O_CLOEXEC);
}
#endif
