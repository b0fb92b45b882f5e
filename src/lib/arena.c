/* arena: bump allocator with a ceiling, usable as a protobuf-c allocator. */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"

struct arena_chunk {
	struct arena_chunk *next;
	size_t size;
	size_t used;
	_Alignas(16) unsigned char data[];
};

static void *
arena_pb_alloc(void *ctx, size_t n)
{
	return arena_alloc(ctx, n);
}

static void
arena_pb_free(void *ctx, void *p)
{
	(void)ctx;
	(void)p;		/* freed all at once by arena_reset */
}

static struct arena_chunk *
arena_chunk_new(struct arena *a, size_t size)
{
	struct arena_chunk *c;

	if (size > a->limit || a->total > a->limit - size) {
		errno = ENOMEM;
		return NULL;
	}
	c = malloc(sizeof(*c) + size);
	if (c == NULL)
		return NULL;
	c->next = NULL;
	c->size = size;
	c->used = 0;
	a->total += size;
	return c;
}

int
arena_init(struct arena *a, size_t chunk_size, size_t limit)
{
	memset(a, 0, sizeof(*a));
	a->chunk_size = chunk_size < 256 ? 256 : chunk_size;
	a->limit = limit < a->chunk_size ? a->chunk_size : limit;
	a->pb.alloc = arena_pb_alloc;
	a->pb.free = arena_pb_free;
	a->pb.allocator_data = a;
	a->head = arena_chunk_new(a, a->chunk_size);
	return a->head ? 0 : -1;
}

static void
arena_free_chain(struct arena_chunk *c)
{
	struct arena_chunk *next;

	for (; c != NULL; c = next) {
		next = c->next;
		free(c);
	}
}

void
arena_release(struct arena *a)
{
	arena_free_chain(a->head);
	a->head = NULL;
	a->total = 0;
}

void
arena_reset(struct arena *a)
{
	struct arena_chunk *first;

	if (a->head == NULL)
		return;
	/* Chunks are pushed on the front; the last in the chain is the first
	 * made, of the base size: keep that one. */
	for (first = a->head; first->next != NULL; first = first->next)
		;
	if (first != a->head) {
		struct arena_chunk *c = a->head, *next;

		for (; c != first; c = next) {
			next = c->next;
			a->total -= c->size;
			free(c);
		}
		a->head = first;
	}
	first->used = 0;
	a->failed = 0;
}

void *
arena_alloc(struct arena *a, size_t n)
{
	struct arena_chunk *c = a->head;
	size_t need;
	void *p;

	if (n > SIZE_MAX - 15) {
		errno = ENOMEM;
		a->failed = 1;
		return NULL;
	}
	need = (n + 15) & ~(size_t)15;
	if (need == 0)
		need = 16;
	if (c == NULL || c->size - c->used < need) {
		size_t size = need > a->chunk_size ? need : a->chunk_size;

		c = arena_chunk_new(a, size);
		if (c == NULL) {
			a->failed = 1;
			return NULL;
		}
		c->next = a->head;
		a->head = c;
	}
	p = c->data + c->used;
	c->used += need;
	return p;
}

void *
arena_zalloc(struct arena *a, size_t n)
{
	void *p = arena_alloc(a, n);

	if (p != NULL)
		memset(p, 0, n);
	return p;
}

char *
arena_strndup(struct arena *a, const char *s, size_t n)
{
	char *p = arena_alloc(a, n + 1);

	if (p == NULL)
		return NULL;
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *
arena_strdup(struct arena *a, const char *s)
{
	return arena_strndup(a, s, strlen(s));
}

char *
arena_printf(struct arena *a, const char *fmt, ...)
{
	va_list ap;
	char *p;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return NULL;
	p = arena_alloc(a, (size_t)n + 1);
	if (p == NULL)
		return NULL;
	va_start(ap, fmt);
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return p;
}
