/* sig: SIGTERM, SIGINT and SIGHUP as flags, for programs whose loop is a
 * blocking read. The handlers only set a flag; they are installed without
 * SA_RESTART so a blocked read(2) returns EINTR and the loop looks at the
 * flags. SIGPIPE is ignored: a closed output shows up as EPIPE. */
#ifndef LGR_SIG_H
#define LGR_SIG_H

void sig_init(void);
/* 1 once SIGTERM or SIGINT arrived. */
int sig_term(void);
/* 1 if SIGHUP arrived since the last call. */
int sig_hup_take(void);
/* Block the three signals in the calling thread, so they go to another. */
void sig_block_here(void);

#endif
