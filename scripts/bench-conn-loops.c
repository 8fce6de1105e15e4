/* scripts/bench-conn.sh with CLIENT=c: the benchmark's client and server
 * loops in C (several times the Python loops' rate).
 *   bench-conn-loops server READY_FILE   accept and close, for ever
 *   bench-conn-loops SECONDS             connect and close; prints the count */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(8080) };
	double end;
	long n = 0;

	inet_pton(AF_INET, "198.18.7.2", &a.sin_addr);
	if (argc == 3 && !strcmp(argv[1], "server")) {
		int one = 1, l = socket(AF_INET, SOCK_STREAM, 0);
		FILE *f;

		setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(l, (void *)&a, sizeof(a)) || listen(l, 4096)) {
			perror("listen");
			return 1;
		}
		f = fopen(argv[2], "w");
		if (!f)
			return 1;
		fputs("up", f);
		fclose(f);
		for (;;) {
			int s = accept(l, NULL, NULL);

			if (s >= 0)
				close(s);
		}
	}
	if (argc != 2)
		return 2;
	end = now() + atof(argv[1]);
	while (now() < end) {
		int c = socket(AF_INET, SOCK_STREAM, 0);

		if (connect(c, (void *)&a, sizeof(a))) {
			perror("connect");
			return 1;
		}
		close(c);
		n++;
	}
	printf("%ld\n", n);
	return 0;
}
