/*
 * stop_signal.h: how the Kafka test tools stop.  SIGTERM, and SIGINT unless
 * it was ignored when the tool started (a script's background job ignores
 * Ctrl-C and leaves stopping it to the script), set stop_requested; the
 * tool's loop checks it.
 */
#ifndef STOP_SIGNAL_H
#define STOP_SIGNAL_H

#include <signal.h>
#include <string.h>

static volatile sig_atomic_t stop_requested = 0;

static void
on_stop_signal(int signo)
{
    (void) signo;
    stop_requested = 1;
}

static void
install_stop_signals(void)
{
    struct sigaction sa;
    struct sigaction old;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop_signal;
    sigaction(SIGTERM, &sa, NULL);
    if (sigaction(SIGINT, NULL, &old) == 0 && old.sa_handler != SIG_IGN)
        sigaction(SIGINT, &sa, NULL);
}

#endif /* STOP_SIGNAL_H */
