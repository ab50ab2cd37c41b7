-- The schema Alembic builds on a new SQLite database, replayed as it is on one
-- (leads/storage/sqlite_schema.py). Written by `python -m leads.storage.sqlite_schema`
-- after a migration is added; do not edit.
-- revisions: 0013

CREATE TABLE alembic_version (
	version_num VARCHAR(32) NOT NULL, 
	CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);

CREATE TABLE api_tokens (
	id CHAR(32) NOT NULL, 
	name VARCHAR(100) NOT NULL, 
	scope VARCHAR(10) NOT NULL, 
	token_hash VARCHAR(64) NOT NULL, 
	created_at DATETIME NOT NULL, 
	last_used_at DATETIME, 
	PRIMARY KEY (id), 
	UNIQUE (name), 
	UNIQUE (token_hash)
);

CREATE TABLE audit_log (
	id INTEGER NOT NULL, 
	at DATETIME NOT NULL, 
	actor VARCHAR(120) NOT NULL, 
	action VARCHAR(40) NOT NULL, 
	lead_id CHAR(32), 
	address VARCHAR(45), 
	detail JSON NOT NULL, 
	PRIMARY KEY (id)
);

CREATE TABLE consent_versions (
	form VARCHAR(50) NOT NULL, 
	version VARCHAR(64) NOT NULL, 
	text TEXT NOT NULL, 
	first_shown_at DATETIME NOT NULL, 
	PRIMARY KEY (form, version)
);

CREATE TABLE daily_jobs (
	job VARCHAR(30) NOT NULL, 
	day DATE NOT NULL, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (job, day)
);

CREATE TABLE delivery_incidents (
	number INTEGER NOT NULL, 
	opened_at DATETIME NOT NULL, 
	since DATETIME NOT NULL, 
	dead INTEGER NOT NULL, 
	waiting INTEGER NOT NULL, 
	channels VARCHAR(100) NOT NULL, 
	closed_at DATETIME, 
	PRIMARY KEY (number)
);

CREATE TABLE digests (
	day DATE NOT NULL, 
	created_at DATETIME NOT NULL, 
	lead_count INTEGER NOT NULL, 
	PRIMARY KEY (day)
);

CREATE TABLE disabled_webhooks (
	url VARCHAR(500) NOT NULL, 
	disabled_at DATETIME NOT NULL, 
	reason VARCHAR(200) NOT NULL, 
	PRIMARY KEY (url)
);

CREATE TABLE enquiries (
	page_url VARCHAR(500), 
	referrer VARCHAR(500), 
	utm_source VARCHAR(500), 
	utm_medium VARCHAR(500), 
	utm_campaign VARCHAR(500), 
	utm_term VARCHAR(500), 
	utm_content VARCHAR(500), 
	client_ip VARCHAR(45), 
	user_agent VARCHAR(500), 
	id CHAR(32) NOT NULL, 
	lead_id CHAR(32) NOT NULL, 
	created_at DATETIME NOT NULL, 
	form VARCHAR(50) NOT NULL, 
	message TEXT, 
	interest VARCHAR(200), 
	preferred_contact VARCHAR(10), 
	consent_version VARCHAR(64) NOT NULL, 
	consent_text TEXT NOT NULL, name VARCHAR(100), email VARCHAR(320), phone VARCHAR(20), language VARCHAR(8), 
	PRIMARY KEY (id), 
	FOREIGN KEY(lead_id) REFERENCES leads (id) ON DELETE CASCADE
);

CREATE TABLE "idempotency_keys" (
	"key" VARCHAR(255) NOT NULL, 
	receipt_id CHAR(32), 
	fingerprint VARCHAR(64), 
	created_at DATETIME NOT NULL, 
	lead_id CHAR(32) NOT NULL, 
	PRIMARY KEY ("key")
);

CREATE TABLE lead_events (
	id CHAR(32) NOT NULL, 
	lead_id CHAR(32) NOT NULL, 
	at DATETIME NOT NULL, 
	kind VARCHAR(20) NOT NULL, 
	user_id CHAR(32), 
	actor VARCHAR(120) NOT NULL, 
	detail JSON NOT NULL, 
	text TEXT, 
	PRIMARY KEY (id), 
	FOREIGN KEY(lead_id) REFERENCES leads (id) ON DELETE CASCADE, 
	FOREIGN KEY(user_id) REFERENCES users (id) ON DELETE SET NULL
);

CREATE TABLE "leads" (
	page_url VARCHAR(500), 
	referrer VARCHAR(500), 
	utm_source VARCHAR(500), 
	utm_medium VARCHAR(500), 
	utm_campaign VARCHAR(500), 
	utm_term VARCHAR(500), 
	utm_content VARCHAR(500), 
	client_ip VARCHAR(45), 
	user_agent VARCHAR(500), 
	id CHAR(32) NOT NULL, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	last_enquiry_at DATETIME NOT NULL, 
	form VARCHAR(50) NOT NULL, 
	status VARCHAR(20) NOT NULL, 
	name VARCHAR(100) NOT NULL, 
	email VARCHAR(320), 
	email_key VARCHAR(320), 
	phone VARCHAR(20), 
	preferred_contact VARCHAR(10), 
	message TEXT, 
	interest VARCHAR(200), 
	enquiry_count INTEGER NOT NULL, 
	consent_version VARCHAR(64) NOT NULL, 
	consent_text TEXT NOT NULL, 
	consent_at DATETIME NOT NULL, 
	spam BOOLEAN NOT NULL, 
	spam_reason VARCHAR(200), 
	receipt_id CHAR(32) NOT NULL, 
	duplicate_of CHAR(32), 
	assigned_to CHAR(32), 
	first_response_at DATETIME, 
	version INTEGER DEFAULT '1' NOT NULL, 
	merged_into CHAR(32), consent_withdrawn_at DATETIME, consent_withdrawn_by VARCHAR(120), language VARCHAR(8), 
	PRIMARY KEY (id), 
	CONSTRAINT fk_leads_duplicate_of_leads FOREIGN KEY(duplicate_of) REFERENCES leads (id) ON DELETE SET NULL, 
	CONSTRAINT fk_leads_assigned_to_users FOREIGN KEY(assigned_to) REFERENCES users (id) ON DELETE SET NULL, 
	CONSTRAINT fk_leads_merged_into_leads FOREIGN KEY(merged_into) REFERENCES leads (id) ON DELETE SET NULL
);

CREATE TABLE "outbox" (
	id CHAR(32) NOT NULL, 
	lead_id CHAR(32), 
	enquiry_id CHAR(32), 
	kind VARCHAR(30) NOT NULL, 
	channel VARCHAR(20) NOT NULL, 
	target VARCHAR(500), 
	status VARCHAR(10) NOT NULL, 
	attempts INTEGER NOT NULL, 
	created_at DATETIME NOT NULL, 
	scheduled_from DATETIME NOT NULL, 
	next_attempt_at DATETIME NOT NULL, 
	claimed_by VARCHAR(100), 
	claimed_until DATETIME, 
	delivered_at DATETIME, 
	last_error VARCHAR(500), handed_over_at DATETIME, provider_message_id VARCHAR(100), 
	PRIMARY KEY (id), 
	FOREIGN KEY(lead_id) REFERENCES leads (id) ON DELETE CASCADE
);

CREATE TABLE staff_sessions (
	id VARCHAR(64) NOT NULL, 
	user_id CHAR(32) NOT NULL, 
	csrf_token VARCHAR(64) NOT NULL, 
	created_at DATETIME NOT NULL, 
	last_seen_at DATETIME NOT NULL, 
	expires_at DATETIME NOT NULL, 
	address VARCHAR(45), 
	PRIMARY KEY (id), 
	FOREIGN KEY(user_id) REFERENCES users (id) ON DELETE CASCADE
);

CREATE TABLE users (
	id CHAR(32) NOT NULL, 
	email VARCHAR(320) NOT NULL, 
	password_hash VARCHAR(200) NOT NULL, 
	role VARCHAR(10) NOT NULL, 
	active BOOLEAN NOT NULL, 
	created_at DATETIME NOT NULL, 
	sessions_valid_from DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (email)
);

CREATE INDEX ix_audit_log_actor ON audit_log (actor);

CREATE INDEX ix_audit_log_at ON audit_log (at);

CREATE INDEX ix_audit_log_lead ON audit_log (lead_id);

CREATE INDEX ix_enquiries_lead_id ON enquiries (lead_id);

CREATE INDEX ix_idempotency_keys_created_at ON idempotency_keys (created_at);

CREATE INDEX ix_lead_events_lead_at ON lead_events (lead_id, at);

CREATE INDEX ix_leads_assigned_to ON leads (assigned_to);

CREATE INDEX ix_leads_created_at ON leads (created_at);

CREATE INDEX ix_leads_duplicate_of ON leads (duplicate_of) WHERE duplicate_of IS NOT NULL;

CREATE INDEX ix_leads_listed ON leads (created_at, id, spam, merged_into, status, form, name, email_key, phone);

CREATE INDEX ix_leads_merged_into ON leads (merged_into) WHERE merged_into IS NOT NULL;

CREATE INDEX ix_leads_open_email ON leads (email_key, status);

CREATE INDEX ix_leads_open_phone ON leads (phone, status);

CREATE UNIQUE INDEX ix_leads_receipt_id ON leads (receipt_id);

CREATE INDEX ix_outbox_lead_id ON outbox (lead_id);

CREATE INDEX ix_outbox_route ON outbox (status, channel, target, next_attempt_at, created_at, id);

CREATE INDEX ix_staff_sessions_user_id ON staff_sessions (user_id);

INSERT INTO alembic_version (version_num) VALUES ('0013');
