# RabbitMQ (management on) from Debian's package, on the debootstrap base.
FROM localhost/debian-base:bookworm
# hadolint ignore=DL3008
RUN apt-get update && apt-get install -y --no-install-recommends rabbitmq-server && rm -rf /var/lib/apt/lists/* \
    && rabbitmq-plugins --offline enable rabbitmq_management \
    && printf 'loopback_users = none\n' > /etc/rabbitmq/rabbitmq.conf
# The package creates the user; its uid is whatever the install picked.
# hadolint ignore=DL3066
USER rabbitmq
EXPOSE 5672 15672
CMD ["rabbitmq-server"]
