-- A team may belong to an organization, as in W&B: its registries are the organization's.
ALTER TABLE entities ADD COLUMN organization_id INTEGER REFERENCES entities(id);
