# The webhook receiver as an AWS Lambda container image (handler bot.webhooks.aws_lambda.handler).
#
#   docker build --platform linux/amd64 -f deploy/aws/lambda.Dockerfile -t ragcode-lambda .
#
# Same base as deploy/Dockerfile (Debian, Python 3.11) plus AWS's runtime interface client, rather than
# public.ecr.aws/lambda/python:3.11: that image is Amazon Linux 2 (glibc 2.26), for which current numpy
# and faiss-cpu publish no wheels (they need manylinux_2_27/2_28), so pip would build them from source.
FROM python:3.11-slim

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
RUN pip install --no-cache-dir . "awslambdaric>=3" \
    && rm -rf /app/bot /app/pyproject.toml /app/README.md

# Lambda's file system is read-only except /tmp.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    RAGCODE_HOME=/tmp/ragcode

ENTRYPOINT ["python", "-m", "awslambdaric"]
CMD ["bot.webhooks.aws_lambda.handler"]
