/* udpecho PORT: answer every UDP datagram on 0.0.0.0:PORT with the same bytes.
   udpecho HOST PORT MESSAGE: send MESSAGE to HOST:PORT once (a client from inside a
   container; busybox nc has no -u).
   The network tests build it with `gcc -static` into a test image (busybox has no UDP
   server applet). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

int main(int argc, char **argv) {
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    if (argc == 4) {
        struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
        if (s < 0 || inet_pton(AF_INET, argv[1], &to.sin_addr) != 1
                || sendto(s, argv[3], strlen(argv[3]), 0, (struct sockaddr *)&to,
                          sizeof to) < 0) {
            perror("udpecho");
            return 1;
        }
        return 0;
    }
    if (argc != 2) {
        fprintf(stderr, "usage: udpecho PORT | udpecho HOST PORT MESSAGE\n");
        return 2;
    }
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1]))};
    if (s < 0 || bind(s, (struct sockaddr *)&addr, sizeof addr) < 0) {
        perror("udpecho");
        return 1;
    }
    for (;;) {
        char buf[65536];
        struct sockaddr_in peer;
        socklen_t len = sizeof peer;
        ssize_t n = recvfrom(s, buf, sizeof buf, 0, (struct sockaddr *)&peer, &len);
        if (n >= 0)
            sendto(s, buf, n, 0, (struct sockaddr *)&peer, len);
    }
}
