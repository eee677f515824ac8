# The README's commands. Everything installs into .venv.
VENV   ?= .venv
PY     := $(VENV)/bin/python
BIN    := $(VENV)/bin
SAMPLE := python/agent_bom/data/sample-events.ndjson
OUT    := build

.PHONY: run test bench lint develop clean

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# Install the package (wheel built by maturin) and run the main job on the
# embedded defaults: stream the bundled sample into evidence, verify it, bundle it.
run: $(PY)
	$(PY) -m pip install -q .
	mkdir -p $(OUT)
	$(BIN)/agent-bom evidence stream $(SAMPLE) -o $(OUT)/evidence.ndjson \
		--stream-id sample-2026 --checkpoint-every 50
	$(BIN)/agent-bom evidence verify $(OUT)/evidence.ndjson --require-sealed
	$(BIN)/agent-bom evidence export $(OUT)/evidence.ndjson -o $(OUT)/evidence.tar.gz
	$(BIN)/agent-bom evidence verify $(OUT)/evidence.tar.gz

# Dev install: test/lint tools plus the extension built in place (release mode).
develop: $(PY)
	$(PY) -m pip install -q 'maturin>=1.7,<2'
	$(BIN)/maturin develop --release --extras dev,postgres,server,kafka -q

# Tests get a private PostgreSQL server (installed and started by scripts/postgres.sh)
# and a single-node Kafka broker (scripts/kafka.sh), both left running for the next
# run; `&&` makes a failed start fail the target.
test: develop
	cargo test --lib --quiet
	dsn="$$(scripts/postgres.sh start)" && \
		kafka="$$(AGENT_BOM_KAFKA_PYTHON=$(PY) scripts/kafka.sh start)" && \
		AGENT_BOM_TEST_DATABASE_URL="$$(printf '%s\n' "$$dsn" | tail -n 1)" \
		AGENT_BOM_TEST_KAFKA_BOOTSTRAP="$$(printf '%s\n' "$$kafka" | tail -n 1)" \
		$(BIN)/pytest -q

bench: develop
	$(PY) benches/bench_stream.py
	cargo bench --quiet --bench hash_pair
	$(PY) benches/bench_redact.py
	$(PY) benches/bench_ocsf.py
	$(PY) benches/redact_reference.py
	$(PY) benches/bench_outbox.py
	$(PY) benches/bench_server.py
	$(PY) benches/bench_kafka.py

lint: develop
	$(BIN)/ruff check python tests benches
	$(BIN)/ruff format --check python tests benches
	$(BIN)/mypy --strict python/agent_bom
	cargo fmt --check
	cargo clippy --lib --features python -- -D warnings

clean:
	rm -rf $(OUT) target $(VENV)
