-- t2t.sim.graph.pim_types: the Graph types of PIM (role schedules, instances and requests, PIM
-- for Groups, role management policies) for body checks and output projection.  The property
-- names of the schedule types are graph-v1.json's (path_types; full types for the schedules and
-- eligibility requests); the policy types are not in that extract and follow the Graph
-- reference pages (unifiedRoleManagementPolicy*, [inferred] as to their full property list).
-- Registered into t2t.sim.graph_schema at load when the generated schema lacks them.
local schema = require "t2t.sim.graph_schema"

local S, D, B = "Edm.String", "Edm.DateTimeOffset", "Edm.Boolean"

local function entity(props, base) return { kind = "entity", base = base, props = props } end
local function complex(props, base) return { kind = "complex", base = base, props = props } end

local REQUEST = { action = S, appScopeId = S, approvalId = S, completedDateTime = D, createdBy = "identitySet",
  createdDateTime = D, customData = S, directoryScopeId = S, id = S, isValidationOnly = B, justification = S,
  principalId = S, roleDefinitionId = S, scheduleInfo = "requestSchedule", status = S, targetScheduleId = S,
  ticketInfo = "ticketInfo" }
local GROUP_REQUEST = { accessId = S, action = S, approvalId = S, completedDateTime = D, createdBy = "identitySet",
  createdDateTime = D, customData = S, groupId = S, id = S, isValidationOnly = B, justification = S,
  principalId = S, scheduleInfo = "requestSchedule", status = S, targetScheduleId = S, ticketInfo = "ticketInfo" }
local GROUP_SCHEDULE = { accessId = S, assignmentType = S, createdDateTime = D, createdUsing = S, groupId = S,
  id = S, memberType = S, modifiedDateTime = D, principalId = S, scheduleInfo = "requestSchedule", status = S }

local TYPES = {
  requestSchedule = complex { startDateTime = D, expiration = "expirationPattern", recurrence = "Edm.Untyped" },
  expirationPattern = complex { duration = "Edm.Duration", endDateTime = D, type = S },
  ticketInfo = complex { ticketNumber = S, ticketSystem = S },
  identitySet = complex { user = "identity", application = "identity", device = "identity" },
  identity = complex { id = S, displayName = S },
  unifiedRoleAssignmentSchedule = entity { appScopeId = S, assignmentType = S, createdDateTime = D, createdUsing = S,
    directoryScopeId = S, id = S, memberType = S, modifiedDateTime = D, principalId = S, roleDefinitionId = S,
    scheduleInfo = "requestSchedule", status = S },
  unifiedRoleEligibilitySchedule = entity { appScopeId = S, createdDateTime = D, createdUsing = S,
    directoryScopeId = S, id = S, memberType = S, modifiedDateTime = D, principalId = S, roleDefinitionId = S,
    scheduleInfo = "requestSchedule", status = S },
  unifiedRoleAssignmentScheduleInstance = entity { appScopeId = S, assignmentType = S, directoryScopeId = S,
    endDateTime = D, id = S, memberType = S, principalId = S, roleAssignmentOriginId = S,
    roleAssignmentScheduleId = S, roleDefinitionId = S, startDateTime = D },
  unifiedRoleEligibilityScheduleInstance = entity { appScopeId = S, directoryScopeId = S, endDateTime = D, id = S,
    memberType = S, principalId = S, roleDefinitionId = S, roleEligibilityScheduleId = S, startDateTime = D },
  unifiedRoleAssignmentScheduleRequest = entity(REQUEST),
  unifiedRoleEligibilityScheduleRequest = entity(REQUEST),
  privilegedAccessGroupAssignmentSchedule = entity(GROUP_SCHEDULE),
  privilegedAccessGroupEligibilitySchedule = entity(GROUP_SCHEDULE),
  privilegedAccessGroupAssignmentScheduleInstance = entity { accessId = S, assignmentScheduleId = S,
    assignmentType = S, endDateTime = D, groupId = S, id = S, memberType = S, principalId = S, startDateTime = D },
  privilegedAccessGroupEligibilityScheduleInstance = entity { accessId = S, eligibilityScheduleId = S,
    endDateTime = D, groupId = S, id = S, memberType = S, principalId = S, startDateTime = D },
  privilegedAccessGroupAssignmentScheduleRequest = entity(GROUP_REQUEST),
  privilegedAccessGroupEligibilityScheduleRequest = entity(GROUP_REQUEST),
  unifiedRoleManagementPolicy = entity { description = S, displayName = S, id = S, isOrganizationDefault = B,
    lastModifiedBy = "identity", lastModifiedDateTime = D, scopeId = S, scopeType = S },
  unifiedRoleManagementPolicyAssignment = entity { id = S, policyId = S, roleDefinitionId = S, scopeId = S,
    scopeType = S },
  unifiedRoleManagementPolicyRuleTarget = complex { caller = S, enforcedSettings = "Collection(Edm.String)",
    inheritableSettings = "Collection(Edm.String)", level = S, operations = "Collection(Edm.String)" },
  unifiedRoleManagementPolicyRule = entity { id = S, target = "unifiedRoleManagementPolicyRuleTarget" },
  approvalSettings = complex { approvalMode = S, isApprovalRequired = B, isApprovalRequiredForExtension = B,
    isRequestorJustificationRequired = B, approvalStages = "Collection(Edm.Untyped)" },
  unifiedRoleManagementPolicyApprovalRule = entity({ setting = "approvalSettings" }, "unifiedRoleManagementPolicyRule"),
  unifiedRoleManagementPolicyNotificationRule = entity({ notificationType = S, recipientType = S,
    notificationLevel = S, isDefaultRecipientsEnabled = B, notificationRecipients = "Collection(Edm.String)" },
    "unifiedRoleManagementPolicyRule"),
  unifiedRoleManagementPolicyExpirationRule = entity({ isExpirationRequired = B, maximumDuration = "Edm.Duration" },
    "unifiedRoleManagementPolicyRule"),
  unifiedRoleManagementPolicyEnablementRule = entity({ enabledRules = "Collection(Edm.String)" },
    "unifiedRoleManagementPolicyRule"),
  unifiedRoleManagementPolicyAuthenticationContextRule = entity({ isEnabled = B, claimValue = S },
    "unifiedRoleManagementPolicyRule"),
}

for name, def in pairs(TYPES) do
  if schema.types[name] == nil then schema.types[name] = def end
end

return TYPES
