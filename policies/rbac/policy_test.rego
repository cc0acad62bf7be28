# Unit tests for the RBAC policy; run with `opa test policies/rbac`.
package rbac_test

import data.rbac

roles := {
	"viewer": {"grants": [{"action": "read", "resource": "orders/*"}]},
	"clerk": {"grants": [{"action": "read", "resource": "orders/*"}, {"action": "write", "resource": "orders/*"}]},
	"root": {"grants": [{"action": "*", "resource": "**"}]},
}

bindings := {"alice": ["viewer"], "bob": ["clerk"], "carol": ["root"], "dave": ["ghost"]}

check(subject, action, resource) if {
	rbac.allow with data.roles as roles
		with data.bindings as bindings
		with input as {"subject": subject, "action": action, "resource": resource}
}

test_viewer_reads if check("alice", "read", "orders/1")

test_viewer_cannot_write if not check("alice", "write", "orders/1")

test_glob_does_not_cross_slash if not check("alice", "read", "orders/1/items")

test_clerk_writes if check("bob", "write", "orders/7")

test_root_does_anything if check("carol", "delete", "invoices/2024/1")

test_unknown_role_grants_nothing if not check("dave", "read", "orders/1")

test_unbound_subject_denied if not check("erin", "read", "orders/1")

test_decision_lists_roles if {
	d := rbac.decision with data.roles as roles
		with data.bindings as bindings
		with input as {"subject": "bob", "action": "read", "resource": "orders/1"}
	d == {"allow": true, "roles": {"clerk"}}
}
