/* listenonly PORT: listen on 0.0.0.0:PORT with a backlog of 0 and never accept: one
   connection fills the accept queue, the SYNs of the next are dropped, so their connect
   hangs. The proxy tests build it with `gcc -static` into a test image. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: listenonly PORT\n");
        return 2;
    }
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1]))};
    if (s < 0 || bind(s, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(s, 0) < 0) {
        perror("listenonly");
        return 1;
    }
    for (;;)
        pause();
}
