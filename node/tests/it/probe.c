/* The network probe the Docker tests run inside their containers.
 *
 * Built by the tests with `gcc -static` into a FROM-scratch image (no
 * registry here). Takes commands separated by `,` and prints one line per
 * command, `<word> ok ...` or `<word> fail: <why>`, so a test asserts on
 * what happened instead of on exit codes (busybox nc can exit 0 on a failed
 * connect).
 *
 *   tcp IP PORT        connect, send an HTTP request, expect the test server's banner
 *   gw PORT            the same against the first address of this container's subnet
 *   dns NAME           resolve NAME with the system resolver
 *   dnstrap NAME       listen for DNS on 127.0.0.1:53 (this namespace), ask the
 *                      resolver in /etc/resolv.conf for NAME, and say whether the
 *                      query came to the listener (where lookups are forwarded)
 *   ipv6               how many IPv6 addresses this namespace has
 *   http URL           GET URL through $http_proxy (absolute form)
 *   connect HOST:PORT  CONNECT through $http_proxy, then GET through the tunnel
 *   hog MB             allocate and touch MB megabytes
 *   forks N            fork up to N sleeping children
 *   write PATH         create PATH and write to it
 *   cat PATH           print PATH
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define BANNER "skrei-test-server"

static int dial(const char *ip, int port, char *why, size_t why_len) {
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)port);
    if (inet_pton(AF_INET, ip, &sa.sin_addr) != 1) {
        snprintf(why, why_len, "bad address %s", ip);
        return -1;
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        snprintf(why, why_len, "socket: %s", strerror(errno));
        return -1;
    }
    fcntl(fd, F_SETFL, O_NONBLOCK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS) {
        snprintf(why, why_len, "connect: %s", strerror(errno));
        close(fd);
        return -1;
    }
    struct pollfd p = {fd, POLLOUT, 0};
    int n = poll(&p, 1, 4000);
    int err = 0;
    socklen_t len = sizeof err;
    if (n <= 0) {
        snprintf(why, why_len, "connect: timed out");
        close(fd);
        return -1;
    }
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) {
        snprintf(why, why_len, "connect: %s", strerror(err));
        close(fd);
        return -1;
    }
    fcntl(fd, F_SETFL, 0);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

/* Sends `req`, reads the reply into buf (NUL-terminated). */
static int exchange(int fd, const char *req, char *buf, size_t cap) {
    if (write(fd, req, strlen(req)) < 0) return -1;
    size_t got = 0;
    while (got + 1 < cap) {
        ssize_t r = read(fd, buf + got, cap - 1 - got);
        if (r <= 0) break;
        got += (size_t)r;
        buf[got] = 0;
        if (strstr(buf, "\r\n\r\n") && strstr(buf, BANNER)) break;
    }
    buf[got] = 0;
    return (int)got;
}

static void cmd_tcp(const char *word, const char *ip, int port) {
    char why[256], buf[4096];
    int fd = dial(ip, port, why, sizeof why);
    if (fd < 0) {
        printf("%s fail: %s:%d %s\n", word, ip, port, why);
        return;
    }
    exchange(fd, "GET / HTTP/1.0\r\nHost: probe\r\n\r\n", buf, sizeof buf);
    close(fd);
    if (strstr(buf, BANNER))
        printf("%s ok %s:%d\n", word, ip, port);
    else
        printf("%s fail: %s:%d no banner\n", word, ip, port);
}

static void cmd_gw(int port) {
    struct ifaddrs *ifs, *i;
    if (getifaddrs(&ifs) != 0) {
        printf("gw fail: getifaddrs: %s\n", strerror(errno));
        return;
    }
    for (i = ifs; i; i = i->ifa_next) {
        if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET || !i->ifa_netmask) continue;
        struct in_addr a = ((struct sockaddr_in *)i->ifa_addr)->sin_addr;
        struct in_addr m = ((struct sockaddr_in *)i->ifa_netmask)->sin_addr;
        if ((ntohl(a.s_addr) >> 24) == 127) continue;
        struct in_addr g;
        g.s_addr = htonl((ntohl(a.s_addr) & ntohl(m.s_addr)) + 1);
        char ip[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &g, ip, sizeof ip);
        freeifaddrs(ifs);
        cmd_tcp("gw", ip, port);
        return;
    }
    freeifaddrs(ifs);
    printf("gw fail: no interface but loopback\n");
}

static void cmd_dns(const char *name) {
    struct addrinfo hints, *res;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(name, NULL, &hints, &res);
    if (rc != 0) {
        printf("dns fail: %s %s\n", name, gai_strerror(rc));
        return;
    }
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &((struct sockaddr_in *)res->ai_addr)->sin_addr, ip, sizeof ip);
    freeaddrinfo(res);
    printf("dns ok %s %s\n", name, ip);
}

/* The first nameserver of /etc/resolv.conf, or 0. */
static int resolver(char *ip, size_t len) {
    char line[256];
    FILE *f = fopen("/etc/resolv.conf", "r");
    if (!f) return 0;
    int found = 0;
    while (!found && fgets(line, sizeof line, f)) {
        char addr[64];
        if (sscanf(line, "nameserver %63s", addr) == 1 && strlen(addr) < len) {
            strcpy(ip, addr);
            found = 1;
        }
    }
    fclose(f);
    return found;
}

static void cmd_dnstrap(const char *name) {
    int trap = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in local;
    memset(&local, 0, sizeof local);
    local.sin_family = AF_INET;
    local.sin_port = htons(53);
    local.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (trap < 0 || bind(trap, (struct sockaddr *)&local, sizeof local) < 0) {
        printf("dnstrap fail: %s bind 127.0.0.1:53: %s\n", name, strerror(errno));
        if (trap >= 0) close(trap);
        return;
    }
    char ns[64];
    if (!resolver(ns, sizeof ns)) {
        printf("dnstrap fail: %s no nameserver in /etc/resolv.conf\n", name);
        close(trap);
        return;
    }
    /* A query for NAME, type A, recursion desired. */
    unsigned char q[512] = {0x5e, 0x11, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0};
    size_t n = 12;
    const char *p = name;
    while (*p && n < sizeof q - 64) {
        size_t l = strcspn(p, ".");
        if (l == 0 || l > 63) break;
        q[n++] = (unsigned char)l;
        memcpy(q + n, p, l);
        n += l;
        p += l;
        if (*p == '.') p++;
    }
    q[n++] = 0;
    q[n++] = 0, q[n++] = 1, q[n++] = 0, q[n++] = 1;
    int ask = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in server;
    memset(&server, 0, sizeof server);
    server.sin_family = AF_INET;
    server.sin_port = htons(53);
    inet_pton(AF_INET, ns, &server.sin_addr);
    sendto(ask, q, n, 0, (struct sockaddr *)&server, sizeof server);
    /* Wait for the forwarded query (answer it: NXDOMAIN) and the answer. */
    size_t first = strcspn(name, ".");
    int seen = 0, rcode = -1;
    struct pollfd fds[2] = {{trap, POLLIN, 0}, {ask, POLLIN, 0}};
    while (rcode < 0 && poll(fds, 2, 8000) > 0) {
        unsigned char buf[512];
        struct sockaddr_in from;
        socklen_t fl = sizeof from;
        if (fds[0].revents & POLLIN) {
            ssize_t r = recvfrom(trap, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
            if (r > 12) {
                if (memmem(buf + 12, (size_t)r - 12, name, first)) seen = 1;
                buf[2] |= 0x80;
                buf[3] = (unsigned char)((buf[3] & 0xf0) | 3);
                sendto(trap, buf, (size_t)r, 0, (struct sockaddr *)&from, fl);
            }
        }
        if (fds[1].revents & POLLIN) {
            ssize_t r = recv(ask, buf, sizeof buf, 0);
            if (r >= 4) rcode = buf[3] & 0x0f;
        }
    }
    close(trap);
    close(ask);
    if (seen)
        printf("dnstrap ok %s forwarded to this namespace, rcode %d\n", name, rcode);
    else
        printf("dnstrap fail: %s not forwarded to this namespace, rcode %d\n", name, rcode);
}

static void cmd_ipv6(void) {
    char line[256];
    int n = 0;
    FILE *f = fopen("/proc/net/if_inet6", "r");
    if (f) {
        while (fgets(line, sizeof line, f)) n++;
        fclose(f);
    }
    printf("ipv6 %d addresses\n", n);
}

/* $http_proxy as "http://IP:PORT" -> ip, port. */
static int proxy_addr(char *ip, size_t ip_len, int *port) {
    const char *p = getenv("http_proxy");
    if (!p || strncmp(p, "http://", 7) != 0) return -1;
    p += 7;
    const char *colon = strrchr(p, ':');
    if (!colon || (size_t)(colon - p) >= ip_len) return -1;
    memcpy(ip, p, (size_t)(colon - p));
    ip[colon - p] = 0;
    *port = atoi(colon + 1);
    return 0;
}

static void status_line(const char *word, const char *target, const char *buf, const char *extra) {
    int code = 0;
    sscanf(buf, "HTTP/%*s %d", &code);
    printf("%s %d %s%s%s\n", word, code, target, extra ? " " : "", extra ? extra : "");
}

static void cmd_http(const char *url) {
    char ip[64], why[256], req[1024], buf[8192], host[256];
    int port;
    if (proxy_addr(ip, sizeof ip, &port) != 0) {
        printf("http fail: no http_proxy\n");
        return;
    }
    const char *h = strstr(url, "://");
    h = h ? h + 3 : url;
    size_t n = strcspn(h, "/");
    if (n >= sizeof host) n = sizeof host - 1;
    memcpy(host, h, n);
    host[n] = 0;
    int fd = dial(ip, port, why, sizeof why);
    if (fd < 0) {
        printf("http fail: proxy %s\n", why);
        return;
    }
    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", url, host);
    exchange(fd, req, buf, sizeof buf);
    close(fd);
    status_line("http", url, buf, strstr(buf, BANNER) ? BANNER : NULL);
}

static void cmd_connect(const char *target) {
    char ip[64], why[256], req[1024], buf[8192];
    int port;
    if (proxy_addr(ip, sizeof ip, &port) != 0) {
        printf("connect fail: no http_proxy\n");
        return;
    }
    int fd = dial(ip, port, why, sizeof why);
    if (fd < 0) {
        printf("connect fail: proxy %s\n", why);
        return;
    }
    snprintf(req, sizeof req, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target);
    if (write(fd, req, strlen(req)) < 0) {
        printf("connect fail: write\n");
        close(fd);
        return;
    }
    /* Read the proxy's reply head only: a 200 leaves the tunnel open. */
    size_t got = 0;
    while (got + 1 < sizeof buf) {
        ssize_t r = read(fd, buf + got, 1);
        if (r <= 0) break;
        got += 1;
        buf[got] = 0;
        if (strstr(buf, "\r\n\r\n")) break;
    }
    buf[got] = 0;
    int code = 0;
    sscanf(buf, "HTTP/%*s %d", &code);
    if (code == 200) {
        char body[4096];
        exchange(fd, "GET / HTTP/1.0\r\nHost: probe\r\n\r\n", body, sizeof body);
        status_line("connect", target, buf, strstr(body, BANNER) ? BANNER : NULL);
    } else {
        status_line("connect", target, buf, NULL);
    }
    close(fd);
}

static void cmd_hog(int mb) {
    for (int i = 0; i < mb; i++) {
        char *p = malloc(1 << 20);
        if (!p) {
            printf("hog fail: malloc after %d MB\n", i);
            return;
        }
        memset(p, 1, 1 << 20);
    }
    printf("hog ok %d MB\n", mb);
}

static void cmd_forks(int n) {
    int i;
    for (i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            sleep(30);
            _exit(0);
        }
        if (pid < 0) {
            printf("forks limited %d %s\n", i, strerror(errno));
            return;
        }
    }
    printf("forks ok %d\n", i);
}

static void cmd_write(const char *path) {
    FILE *f = fopen(path, "w");
    if (!f || fputs("written by the job\n", f) < 0 || fclose(f) != 0) {
        printf("write fail: %s %s\n", path, strerror(errno));
        return;
    }
    printf("write ok %s\n", path);
}

static void cmd_cat(const char *path) {
    char buf[4096];
    FILE *f = fopen(path, "r");
    if (!f) {
        printf("cat fail: %s %s\n", path, strerror(errno));
        return;
    }
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    buf[strcspn(buf, "\n")] = 0;
    printf("cat ok %s %s\n", path, buf);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    int i = 1;
    while (i < argc) {
        int end = i;
        while (end < argc && strcmp(argv[end], ",") != 0) end++;
        int n = end - i;
        const char *c = argv[i];
        if (n == 3 && !strcmp(c, "tcp")) cmd_tcp("tcp", argv[i + 1], atoi(argv[i + 2]));
        else if (n == 2 && !strcmp(c, "gw")) cmd_gw(atoi(argv[i + 1]));
        else if (n == 2 && !strcmp(c, "dns")) cmd_dns(argv[i + 1]);
        else if (n == 2 && !strcmp(c, "dnstrap")) cmd_dnstrap(argv[i + 1]);
        else if (n == 1 && !strcmp(c, "ipv6")) cmd_ipv6();
        else if (n == 2 && !strcmp(c, "http")) cmd_http(argv[i + 1]);
        else if (n == 2 && !strcmp(c, "connect")) cmd_connect(argv[i + 1]);
        else if (n == 2 && !strcmp(c, "hog")) cmd_hog(atoi(argv[i + 1]));
        else if (n == 2 && !strcmp(c, "forks")) cmd_forks(atoi(argv[i + 1]));
        else if (n == 2 && !strcmp(c, "write")) cmd_write(argv[i + 1]);
        else if (n == 2 && !strcmp(c, "cat")) cmd_cat(argv[i + 1]);
        else {
            printf("usage fail: %s\n", c);
            return 2;
        }
        i = end + 1;
    }
    return 0;
}
