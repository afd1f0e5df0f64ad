# The kind node image made here (tools/kind/node-image.sh), after kind's own images/base/Dockerfile but from
# Debian's packages (containerd 1.6, runc, CNI plugins) on the Debian base made by tools/debian/base.sh. The
# build context holds kind's images/base/files (as files/), the runc wrapper and the node binaries.
ARG BASE
FROM ${BASE}
# Packages first: this layer stays cached while kind's files or the binaries change.
RUN DEBIAN_FRONTEND=noninteractive apt-get update -q \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      systemd conntrack iptables nftables iproute2 ethtool util-linux mount kmod libseccomp2 pigz \
      bash ca-certificates jq procps containerd runc containernetworking-plugins \
    && apt-get clean && rm -rf /var/lib/apt/lists/* /usr/share/doc/* /usr/share/man/* \
    && find /lib/systemd/system/sysinit.target.wants/ -name "systemd-tmpfiles-setup.service" -delete \
    && rm -f /lib/systemd/system/multi-user.target.wants/* /etc/systemd/system/*.wants/* \
      /lib/systemd/system/local-fs.target.wants/* /lib/systemd/system/sockets.target.wants/*udev* \
      /lib/systemd/system/sockets.target.wants/*initctl* /lib/systemd/system/basic.target.wants/* \
    && echo "ReadKMsg=no" >> /etc/systemd/journald.conf \
    && ln -sf /usr/lib/systemd/systemd /sbin/init \
    # kind's containerd unit runs /usr/local/bin/containerd; its containerd config looks in /opt/cni/bin.
    && ln -s /usr/bin/containerd /usr/local/bin/containerd \
    && mkdir -p /opt/cni/bin && ln -s /usr/lib/cni/* /opt/cni/bin/ \
    && test -x /usr/bin/runc
COPY files/usr/local/bin/ /usr/local/bin/
COPY files/kind/ /kind/
COPY files/etc/ /etc/
# cgroupfs (this machine's cgroup v1 under Docker), pods run through the runc wrapper, and the pause image
# built here as the sandbox.
ARG PAUSE_IMAGE
RUN chmod 0755 /usr/local/bin/* /kind /kind/bin /kind/bin/* \
    && ctr oci spec \
      | jq '.hooks.createContainer[.hooks.createContainer| length] |= . + {"path": "/kind/bin/mount-product-files.sh"}' \
      | jq 'del(.process.rlimits)' > /etc/containerd/cri-base.json \
    && sed -i -e 's/SystemdCgroup = true/SystemdCgroup = false\n    BinaryName = "\/usr\/local\/bin\/ghostpay-runc"/' \
      -e "s|sandbox_image = .*|sandbox_image = \"${PAUSE_IMAGE}\"|" /etc/containerd/config.toml \
    && systemctl enable kubelet.service containerd.service undo-mount-hacks.service \
    && systemctl mask systemd-binfmt.service \
    && mkdir -p /etc/kubernetes/manifests
COPY bin/ /usr/bin/
COPY ghostpay-runc /usr/local/bin/ghostpay-runc
ENV container=docker
STOPSIGNAL SIGRTMIN+3
ENTRYPOINT [ "/usr/local/bin/entrypoint", "/sbin/init" ]
