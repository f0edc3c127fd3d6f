/*
 * The pod sandbox's process: holds the pod's namespaces open, reaps the zombies
 * re-parented to it (it is PID 1 of a pod that shares its PID namespace), and
 * exits cleanly on SIGINT or SIGTERM. Built statically: the image is FROM scratch.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define VERSION "3.10"

static void on_stop(int sig) {
    /* Only async-signal-safe calls in a handler. */
    static const char msg[] = "pause: shutting down\n";
    (void)sig;
    (void)!write(STDERR_FILENO, msg, sizeof msg - 1);
    _exit(0);
}

static void on_child(int sig) {
    int saved = errno;
    (void)sig;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
    errno = saved;
}

static void install(int sig, void (*handler)(int), int flags) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sa.sa_flags = flags;
    sigemptyset(&sa.sa_mask);
    if (sigaction(sig, &sa, NULL) < 0) {
        perror("pause: sigaction");
        exit(1);
    }
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "-v") == 0) {
        printf("pause version %s (aifleet)\n", VERSION);
        return 0;
    }
    if (getpid() != 1) {
        /* Not an error: the kubelet's runtime may run it in a shared PID namespace. */
        fprintf(stderr, "pause: warning: not PID 1\n");
    }
    install(SIGINT, on_stop, 0);
    install(SIGTERM, on_stop, 0);
    install(SIGCHLD, on_child, SA_NOCLDSTOP | SA_RESTART);
    for (;;) {
        pause();
    }
    return 1;
}
