/* buf: a growable byte buffer with a ceiling set at creation, so no load
 * can make it grow without bound. The buffer owns its memory; buf_release
 * frees it. */
#ifndef LGR_BUF_H
#define LGR_BUF_H

#include <stddef.h>

struct buf {
	char *data;
	size_t len;
	size_t cap;
	size_t max;	/* ceiling on cap */
};

/* 0, or -1 with errno ENOMEM. max >= initial. */
int buf_init(struct buf *b, size_t initial, size_t max);
void buf_release(struct buf *b);
static inline void buf_reset(struct buf *b) { b->len = 0; }

/* Make room for n more bytes: 0, or -1 with errno EMSGSIZE past the
 * ceiling (ENOMEM if malloc fails). */
int buf_reserve(struct buf *b, size_t n);
int buf_append(struct buf *b, const void *p, size_t n);
int buf_putc(struct buf *b, char c);
int buf_puts(struct buf *b, const char *s);
int buf_printf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
