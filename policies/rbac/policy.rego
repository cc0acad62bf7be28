# Generic role-based access control: subjects are bound to roles, roles grant actions on resources.
#
# data.bindings: subject -> [role]   (an object, so a decision looks a subject up instead of scanning)
# data.roles:    role -> {"grants": [{"action": "read" | "*", "resource": "<glob over />"}]}
# input:         {"subject": "...", "action": "...", "resource": "orders/42"}
# Entrypoints: rbac/allow (boolean), rbac/decision ({allow, roles}).
package rbac

default allow := false

allow if {
	some role in subject_roles
	some grant in data.roles[role].grants
	action_matches(grant.action)
	glob.match(grant.resource, ["/"], input.resource)
}

subject_roles contains role if {
	some role in data.bindings[input.subject]
}

action_matches("*")

action_matches(action) if action == input.action

decision := {"allow": allow, "roles": subject_roles}
