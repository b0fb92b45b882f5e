/* udpsend: the load generator for make bench. Sends the datagram held in
 * FILE to ADDR COUNT times with sendmmsg, as fast as the socket takes
 * them, and prints how many it sent.
 *
 *   udpsend HOST PORT FILE COUNT */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BATCH 64

int
main(int argc, char **argv)
{
	static char data[65536];
	struct mmsghdr msgs[BATCH];
	struct iovec iov;
	struct sockaddr_in sa;
	unsigned long count, sent = 0;
	size_t len;
	FILE *f;
	int fd, i;

	if (argc != 5) {
		fprintf(stderr, "usage: udpsend HOST PORT FILE COUNT\n");
		return 2;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((unsigned short)atoi(argv[2]));
	if (inet_pton(AF_INET, argv[1], &sa.sin_addr) != 1) {
		fprintf(stderr, "udpsend: bad address %s\n", argv[1]);
		return 2;
	}
	f = fopen(argv[3], "rb");
	if (f == NULL) {
		perror(argv[3]);
		return 1;
	}
	len = fread(data, 1, sizeof(data), f);
	fclose(f);
	count = strtoul(argv[4], NULL, 10);
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd == -1 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1) {
		perror("udpsend: socket");
		return 1;
	}
	iov.iov_base = data;
	iov.iov_len = len;
	memset(msgs, 0, sizeof(msgs));
	for (i = 0; i < BATCH; i++) {
		msgs[i].msg_hdr.msg_iov = &iov;
		msgs[i].msg_hdr.msg_iovlen = 1;
	}
	while (sent < count) {
		unsigned n = count - sent < BATCH ? count - sent : BATCH;
		int k = sendmmsg(fd, msgs, n, 0);

		if (k < 0) {
			perror("udpsend: sendmmsg");
			return 1;
		}
		sent += k;
	}
	printf("%lu\n", sent);
	return 0;
}
