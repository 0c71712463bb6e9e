-- A group with a business unit of its own is a team: roles it holds at business-unit depths
-- reach from the team's unit rather than from each member's.
ALTER TABLE groups ADD COLUMN business_unit_id TEXT COLLATE "C" REFERENCES business_units (id);
