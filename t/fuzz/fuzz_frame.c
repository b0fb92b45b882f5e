/* fuzz_frame: the frame reader on arbitrary bytes, with a small
 * --max-frame so oversized frames are exercised too. Every frame handed
 * out must lie inside the input, within the limit. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "frame.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct frame_reader r;
	const unsigned char *p;
	size_t len, total = 0;
	int fd, rc;

	fd = memfd_create("fuzz_frame", 0);
	if (fd == -1)
		return 0;
	if (size && write(fd, data, size) != (ssize_t)size)
		abort();
	lseek(fd, 0, SEEK_SET);
	if (frame_reader_init(&r, fd, 64) == -1)
		abort();
	while ((rc = frame_read(&r, &p, &len)) == 1) {
		if (len > 64 || total + FRAME_HEADER + len > size)
			abort();
		if (memcmp(p - FRAME_HEADER, data + r.offset - FRAME_HEADER - len,
		    FRAME_HEADER + len) != 0)
			abort();
		total += FRAME_HEADER + len;
	}
	if (rc == 0 && r.offset != size)
		abort();
	frame_reader_release(&r);
	close(fd);
	return 0;
}
