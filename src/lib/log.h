/* log: one line per event on stderr, as key=value fields.
 *
 *   lgr-diode: level=warn event=frame_skipped len=2097152 max=1048576
 *
 * log_init() names the program once; every line starts with that name.
 * Safe to call from any thread: each line is written with one write(2). */
#ifndef LGR_LOG_H
#define LGR_LOG_H

void log_init(const char *prog);
const char *log_prog(void);

/* fmt holds the fields after level=..., e.g. "event=start size=%zu". */
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
