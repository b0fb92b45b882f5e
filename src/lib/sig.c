/* sig: signal flags for blocking loops. */
#include <pthread.h>
#include <signal.h>
#include <string.h>

#include "sig.h"

/* Signals are per process: these are the only mutable globals. */
static volatile sig_atomic_t sig_term_flag, sig_hup_flag;

static void
sig_handler(int signo)
{
	if (signo == SIGHUP)
		sig_hup_flag = 1;
	else
		sig_term_flag = 1;
}

void
sig_init(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = sig_handler;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
}

int
sig_term(void)
{
	return sig_term_flag;
}

int
sig_hup_take(void)
{
	int v = sig_hup_flag;

	sig_hup_flag = 0;
	return v;
}

void
sig_block_here(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
}
