/* kprobe: what a container's process can reach of the kernel (built static by the tests).

   kprobe syscalls        try syscalls Docker's default seccomp profile denies to a
                          container without CAP_SYS_ADMIN; one line "NAME RESULT" each,
                          RESULT "ok" or the errno's name
   kprobe keyring DESC    look for the "user" key DESC from the session keyring; prints
                          "found PAYLOAD" or "absent ERRNO"
   kprobe packet PORT MSG as a raw Ethernet frame on tap0 (AF_PACKET), send MSG in a UDP
                          datagram and a TCP SYN from 10.0.2.100 to 10.0.2.2:PORT (slirp's
                          gateway, which is the host's 127.0.0.1 when host loopback is on);
                          prints "sent" or "socket ERRNO" */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <netinet/udp.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char *ename(int e) {
    switch (e) {
    case EPERM: return "EPERM";
    case ENOSYS: return "ENOSYS";
    case EINVAL: return "EINVAL";
    case EACCES: return "EACCES";
    case ENOKEY: return "ENOKEY";
    case EFAULT: return "EFAULT";
    case EBADF: return "EBADF";
    case ENOENT: return "ENOENT";
    default: return "OTHER";
    }
}

static void report(const char *name, long r) {
    printf("%s %s\n", name, r < 0 ? ename(errno) : "ok");
}

static int syscalls(void) {
    /* arguments chosen to do nothing harmful when allowed */
    report("unshare", syscall(SYS_unshare, CLONE_NEWUSER));
    report("keyctl", syscall(SYS_keyctl, 0 /* GET_KEYRING_ID */, -3 /* @s */, 0));
    report("add_key", syscall(SYS_add_key, "user", "kprobe", "x", 1, -3));
    report("bpf", syscall(SYS_bpf, 0 /* MAP_CREATE */, NULL, 0));
    report("perf_event_open", syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0));
    report("mount", syscall(SYS_mount, "none", "/", NULL, 0, NULL));
    report("setns", syscall(SYS_setns, -1, 0));
    report("pivot_root", syscall(SYS_pivot_root, "/nonexistent", "/nonexistent"));
    report("getpid", syscall(SYS_getpid));
    return 0;
}

static int keyring(const char *desc) {
    long id = syscall(SYS_keyctl, 10 /* SEARCH */, -3, "user", desc, 0);
    if (id < 0) {
        printf("absent %s\n", ename(errno));
        return 0;
    }
    char buf[256] = {0};
    long n = syscall(SYS_keyctl, 11 /* READ */, id, buf, sizeof buf - 1);
    printf("found %s\n", n >= 0 ? buf : ename(errno));
    return 0;
}

static uint16_t csum(const void *data, size_t len, uint32_t sum) {
    const uint8_t *p = data;
    for (; len > 1; p += 2, len -= 2)
        sum += (p[0] << 8) | p[1];
    if (len)
        sum += p[0] << 8;
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

static int send_frame(int s, struct sockaddr_ll *to, const uint8_t *src_mac, int proto,
                      int port, const char *msg) {
    uint8_t frame[1500] = {0};
    struct ether_header *eth = (void *)frame;
    struct iphdr *ip = (void *)(frame + sizeof *eth);
    uint8_t *l4 = (uint8_t *)ip + sizeof *ip;
    static const uint8_t gw_mac[6] = {0x52, 0x55, 0x0a, 0x00, 0x02, 0x02};
    size_t l4len;
    memcpy(eth->ether_dhost, gw_mac, 6);
    memcpy(eth->ether_shost, src_mac, 6);
    eth->ether_type = htons(ETHERTYPE_IP);
    ip->version = 4;
    ip->ihl = 5;
    ip->ttl = 64;
    ip->protocol = proto;
    ip->saddr = inet_addr("10.0.2.100");
    ip->daddr = inet_addr("10.0.2.2");
    ip->id = htons(4242);
    struct { uint32_t src, dst; uint8_t zero, proto; uint16_t len; } __attribute__((packed)) ph;
    if (proto == IPPROTO_UDP) {
        struct udphdr *udp = (void *)l4;
        size_t n = strlen(msg);
        l4len = sizeof *udp + n;
        udp->source = htons(40000);
        udp->dest = htons(port);
        udp->len = htons(l4len);
        memcpy(l4 + sizeof *udp, msg, n);
    } else {
        struct tcphdr *tcp = (void *)l4;
        l4len = sizeof *tcp;
        tcp->source = htons(40001);
        tcp->dest = htons(port);
        tcp->seq = htonl(12345);
        tcp->doff = 5;
        tcp->syn = 1;
        tcp->window = htons(65535);
    }
    ph.src = ip->saddr;
    ph.dst = ip->daddr;
    ph.zero = 0;
    ph.proto = proto;
    ph.len = htons(l4len);
    uint32_t sum = 0;
    const uint8_t *pp = (const uint8_t *)&ph;
    for (size_t i = 0; i < sizeof ph; i += 2)
        sum += (pp[i] << 8) | pp[i + 1];
    uint16_t c = csum(l4, l4len, sum);
    if (proto == IPPROTO_UDP)
        ((struct udphdr *)l4)->check = htons(c ? c : 0xffff);
    else
        ((struct tcphdr *)l4)->check = htons(c);
    ip->tot_len = htons(sizeof *ip + l4len);
    ip->check = htons(csum(ip, sizeof *ip, 0));
    size_t total = sizeof *eth + sizeof *ip + l4len;
    return sendto(s, frame, total < 60 ? 60 : total, 0, (struct sockaddr *)to, sizeof *to);
}

static int packet(int port, const char *msg) {
    int s = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
    if (s < 0) {
        printf("socket %s\n", ename(errno));
        return 0;
    }
    struct ifreq ifr = {0};
    strncpy(ifr.ifr_name, "tap0", IFNAMSIZ - 1);
    if (ioctl(s, SIOCGIFINDEX, &ifr) < 0) {
        printf("ifindex %s\n", ename(errno));
        return 1;
    }
    struct sockaddr_ll to = {0};
    to.sll_family = AF_PACKET;
    to.sll_ifindex = ifr.ifr_ifindex;
    to.sll_halen = 6;
    if (ioctl(s, SIOCGIFHWADDR, &ifr) < 0) {
        printf("hwaddr %s\n", ename(errno));
        return 1;
    }
    uint8_t mac[6];
    memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
    for (int i = 0; i < 3; i++) {
        if (send_frame(s, &to, mac, IPPROTO_UDP, port, msg) < 0 ||
            send_frame(s, &to, mac, IPPROTO_TCP, port, msg) < 0) {
            printf("send %s\n", ename(errno));
            return 1;
        }
        usleep(100000);
    }
    printf("sent\n");
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc == 2 && !strcmp(argv[1], "syscalls"))
        return syscalls();
    if (argc == 3 && !strcmp(argv[1], "keyring"))
        return keyring(argv[2]);
    if (argc == 4 && !strcmp(argv[1], "packet"))
        return packet(atoi(argv[2]), argv[3]);
    fprintf(stderr, "usage: kprobe syscalls | keyring DESC | packet PORT MSG\n");
    return 2;
}
