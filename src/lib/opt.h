/* opt: the command line every lgr program shares. getopt_long underneath;
 * --help prints the usage to stdout and exits 0, --version prints one line
 * and exits 0, and any usage error prints a one-line reason and the usage
 * to stderr and exits 2. */
#ifndef LGR_OPT_H
#define LGR_OPT_H

#include <getopt.h>
#include <stdint.h>

#define LGR_VERSION "0.1.0"

/* Every program's long options end with these. */
#define OPT_COMMON \
	{ "help", no_argument, NULL, 'h' }, \
	{ "version", no_argument, NULL, 'V' }

struct opt_prog {
	const char *name;	/* lgr-diode */
	const char *usage;	/* synopsis lines, without "usage: " */
	const char *help;	/* option list printed by --help */
};

/* Name the program (also for log lines). */
void opt_init(const struct opt_prog *p);

/* getopt_long that handles -h/--help, -V/--version and errors itself:
 * returns the next program option, or -1 when options end. shortopts
 * should not start with ':'; "hV" is added by this function. */
int opt_next(int argc, char **argv, const char *shortopts,
    const struct option *longopts);

__attribute__((noreturn, format(printf, 1, 2))) void
opt_usage_error(const char *fmt, ...);

/* Numbers are checked whole, in range, or a usage error naming flag. */
uint64_t opt_u64(const char *arg, const char *flag, uint64_t min, uint64_t max);
int64_t opt_i64(const char *arg, const char *flag, int64_t min, int64_t max);
double opt_double(const char *arg, const char *flag, double min, double max);

/* Parse without exiting: 0, or -1 with errno EINVAL/ERANGE. */
int parse_u64(const char *s, uint64_t *v);
int parse_i64(const char *s, int64_t *v);
int parse_double(const char *s, double *v);

#endif
