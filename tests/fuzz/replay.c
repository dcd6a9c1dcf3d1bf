/*
 * replay.c: run a fuzz target over every file of a corpus directory, so the
 * saved corpus is replayed by CTest in every build (no libFuzzer needed).
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REPLAY_MAX	(1024 * 1024)

int
main(int argc, char **argv)
{
	struct dirent *de;
	unsigned char *data;
	char path[4096];
	size_t n, total = 0;
	FILE *f;
	DIR *d;

	if (argc != 2) {
		fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
		return 2;
	}
	if ((d = opendir(argv[1])) == NULL) {
		fprintf(stderr, "%s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	if ((data = malloc(REPLAY_MAX)) == NULL)
		return 1;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", argv[1], de->d_name) >= sizeof(path))
			continue;
		if ((f = fopen(path, "rb")) == NULL)
			continue;
		n = fread(data, 1, REPLAY_MAX, f);
		fclose(f);
		LLVMFuzzerTestOneInput(data, n);
		total++;
	}
	closedir(d);
	free(data);
	printf("replayed %zu inputs from %s\n", total, argv[1]);
	if (total == 0) {
		fprintf(stderr, "empty corpus: nothing was replayed\n");
		return 1;
	}
	return 0;
}
