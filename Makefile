# edudesk: `make run` starts the embedded default; `make test` installs what the tests need and runs them all.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Empty: the database tests get a PostgreSQL database of their own on the local server, dropped after the run.
PG_TEST_URL ?=

.PHONY: run test venv test-deps lint unit pg bench migrations clean wheelhouse image image-debian test-image

$(BIN)/edudesk: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(BIN)/edudesk

venv: $(BIN)/edudesk

run: venv
	$(BIN)/edudesk db migrate
	$(BIN)/edudesk run

test-deps:
	bash scripts/install-test-deps.sh

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy edudesk
	$(BIN)/lint-imports
	$(BIN)/vulture edudesk scripts/vulture_allow.py --exclude edudesk/core/migrations --min-confidence 60

# The whole suite on SQLite, then the database tests again on the PostgreSQL server of this machine kind.
# Each run keeps its state in temp dirs and its own database (no .pytest_cache): two runs can share a host.
PYTEST := $(BIN)/pytest -q -p no:cacheprovider
test: venv test-deps lint
	$(PYTEST)
ifeq ($(PG_TEST_URL),)
	$(BIN)/python scripts/pg_test_db.py $(PYTEST) -m db
else
	EDUDESK_TEST_DATABASE_URL=$(PG_TEST_URL) $(PYTEST) -m db
endif

# The Docker image installs only these wheels, offline (Dockerfile). async-timeout: redis wants it on Python
# < 3.11.3 (Debian 12's python3 is 3.11.2), and pip on a newer host Python would leave it out. build/ goes
# first: setuptools would put files left there by an older tree into the wheel.
wheelhouse: venv
	rm -rf build wheelhouse
	$(BIN)/pip wheel --quiet -w wheelhouse . 'async-timeout>=4.0.3'

image: wheelhouse
	docker build -t edudesk .

# Without Docker Hub: the base image from Debian's packages (debootstrap, about a minute, kept).
image-debian: wheelhouse
	bash scripts/make-base-image.sh
	docker build --build-arg BASE=edudesk-base:bookworm -t edudesk .

# Only the image tests (`make test` runs them too): they start dockerd and make the base image when missing.
test-image: venv test-deps
	$(PYTEST) -m image

bench: venv
	$(BIN)/python bench/intake.py
	$(BIN)/python bench/notify.py
	$(BIN)/python bench/provision.py
	$(BIN)/python bench/signing.py
	$(BIN)/python bench/senders.py

# Write a new migration after changing a models.py of edudesk/core.
migrations: venv
	$(BIN)/tortoise -c edudesk.core.db.MIGRATIONS_CONFIG makemigrations

clean:
	rm -rf $(VENV) data
