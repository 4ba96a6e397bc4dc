FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md constraints.txt ./
COPY studybuddy ./studybuddy
RUN pip install --no-cache-dir -c constraints.txt ".[pot,postgres]" \
    && useradd --create-home studybuddy
USER studybuddy
WORKDIR /data
ENTRYPOINT ["study-buddy"]
CMD ["--help"]
