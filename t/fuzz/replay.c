/* replay: run a fuzz target's LLVMFuzzerTestOneInput over every file of
 * the corpus directories (or files) given, without libFuzzer, so that
 * `make check` keeps every input ever found as a regression test. Built
 * with ASan and UBSan; a crash fails the run. Output is TAP. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
replay_file(const char *path)
{
	unsigned char *data;
	FILE *f = fopen(path, "rb");
	struct stat st;
	size_t n;

	if (f == NULL || fstat(fileno(f), &st) == -1) {
		if (f)
			fclose(f);
		return -1;
	}
	/* An exact-size heap copy, so ASan sees a read one byte too far. */
	data = malloc(st.st_size ? st.st_size : 1);
	if (data == NULL) {
		fclose(f);
		return -1;
	}
	n = fread(data, 1, st.st_size, f);
	fclose(f);
	LLVMFuzzerTestOneInput(data, n);
	free(data);
	return 0;
}

static int
replay_path(const char *path, int *count)
{
	struct dirent *de;
	struct stat st;
	char sub[4096];
	DIR *d;

	if (stat(path, &st) == -1)
		return -1;
	if (!S_ISDIR(st.st_mode)) {
		(*count)++;
		return replay_file(path);
	}
	d = opendir(path);
	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
		if (replay_path(sub, count) == -1) {
			closedir(d);
			return -1;
		}
	}
	closedir(d);
	return 0;
}

int
main(int argc, char **argv)
{
	int i, count = 0, bad = 0;

	for (i = 1; i < argc; i++)
		if (replay_path(argv[i], &count) == -1)
			bad = 1;
	printf("%sok 1 - replayed %d inputs\n1..1\n", bad ? "not " : "", count);
	return bad;
}
