/* The floor under any legacy-table reader: the kernel copying one table out through getsockopt.
 *
 * Run inside the namespace holding the table (benchmarks/bench.py compiles and runs it with `ip netns exec`).
 * Prints the median wall time of IPT_SO_GET_INFO + IPT_SO_GET_ENTRIES over RUNS runs, in milliseconds, and the
 * size copied. Read-only: the same two calls libiptc's iptc_init makes; nothing is sent on the socket.
 *
 * Usage: getsockopt-floor TABLE RUNS
 */
#include <netinet/in.h>  /* before the linux headers, which would define struct in_addr again */
#include <linux/netfilter_ipv4/ip_tables.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s TABLE RUNS\n", argv[0]);
        return 64;
    }
    int runs = atoi(argv[2]);
    if (runs < 1) runs = 1;
    int fd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
    if (fd < 0) { perror("socket"); return 2; }
    double *times = calloc(runs, sizeof *times);
    size_t copied = 0;
    for (int i = 0; i < runs; i++) {
        double start = now_ms();
        struct ipt_getinfo info;
        memset(&info, 0, sizeof info);
        strncpy(info.name, argv[1], sizeof info.name - 1);
        socklen_t len = sizeof info;
        if (getsockopt(fd, IPPROTO_IP, IPT_SO_GET_INFO, &info, &len) < 0) { perror("IPT_SO_GET_INFO"); return 2; }
        len = sizeof(struct ipt_get_entries) + info.size;
        struct ipt_get_entries *entries = malloc(len);
        memset(entries, 0, sizeof *entries);
        strncpy(entries->name, argv[1], sizeof entries->name - 1);
        entries->size = info.size;
        if (getsockopt(fd, IPPROTO_IP, IPT_SO_GET_ENTRIES, entries, &len) < 0) { perror("IPT_SO_GET_ENTRIES"); return 2; }
        times[i] = now_ms() - start;
        copied = info.size;
        free(entries);
    }
    qsort(times, runs, sizeof *times, compare);
    printf("%.3f %zu\n", times[runs / 2], copied);
    close(fd);
    return 0;
}
