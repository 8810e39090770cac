"""What the fake Manage accepts and how it refuses: the All.json field lists writes are checked
against, Manage's error body, and scripted faults answered in Manage's words."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from starlette.responses import JSONResponse

from adapters.testing.faults import (
    ScriptedFault,
    retry_after_value,
)

Row = dict[str, Any]

# ---------------------------------------------------------------------------------------------
# Field lists (from All.json 2025.8 via ai-connor/connectwise model_*.go)
# ---------------------------------------------------------------------------------------------


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


TICKET_FIELDS = _words(
    "id summary recordType board status workRole workType company site siteName addressLine1 "
    "addressLine2 city stateIdentifier zip country contact contactName contactPhoneNumber "
    "contactPhoneExtension contactEmailAddress type subType item team owner priority serviceLocation "
    "source requiredDate budgetHours opportunity agreement agreementType severity impact externalXRef "
    "poNumber knowledgeBaseCategoryId knowledgeBaseSubCategoryId allowAllClientsPortalView "
    "customerUpdatedFlag automaticEmailContactFlag automaticEmailResourceFlag automaticEmailCcFlag "
    "automaticEmailCc initialDescription initialInternalAnalysis initialResolution "
    "initialDescriptionFrom contactEmailLookup processNotifications skipCallback closedDate closedBy "
    "closedFlag actualHours approved estimatedExpenseCost estimatedExpenseRevenue estimatedProductCost "
    "estimatedProductRevenue estimatedTimeCost estimatedTimeRevenue billingMethod billingAmount "
    "hourlyRate subBillingMethod subBillingAmount subDateAccepted dateResolved dateResplan "
    "dateResponded resolveMinutes resPlanMinutes respondMinutes isInSla knowledgeBaseLinkId resources "
    "parentTicketId hasChildTicket hasMergedChildTicketFlag knowledgeBaseLinkType billTime "
    "billExpenses billProducts predecessorType predecessorId predecessorClosedFlag lagDays "
    "lagNonworkingDaysFlag estimatedStartDate duration location department mobileGuid sla slaStatus "
    "requestForChangeFlag currency mergedParentTicket integratorTags _info escalationStartDateUTC "
    "escalationLevel minutesBeforeWaiting respondedSkippedMinutes resplanSkippedMinutes respondedHours "
    "respondedBy resplanHours resplanBy resolutionHours resolvedBy minutesWaiting customFields"
)
TICKET_REFS = _words(
    "board status workRole workType company site country contact type subType item team owner priority "
    "serviceLocation source opportunity agreement location department sla currency mergedParentTicket"
)
NOTE_FIELDS = _words(
    "id ticketId text detailDescriptionFlag internalAnalysisFlag resolutionFlag issueFlag member "
    "contact customerUpdatedFlag processNotifications dateCreated createdBy internalFlag externalFlag "
    "sentimentScore _info"
)
NOTE_REFS = _words("member contact")
TIME_ENTRY_FIELDS = _words(
    "id company chargeToId chargeToType member timeStart timeEnd actualHours notes dateEntered "
    "enteredBy ticketStatus _info"
)
ADDITION_FIELDS = _words(
    "id product quantity lessIncluded unitPrice unitCost billCustomer effectiveDate cancelledDate "
    "taxableFlag serialNumber invoiceDescription purchaseItemFlag specialOrderFlag agreementId "
    "description billedQuantity uom extPrice extCost sequenceNumber margin prorateCost proratePrice "
    "extendedProrateCost extendedProratePrice prorateCurrentPeriodFlag opportunity agreementStatus "
    "invoiceGrouping _info customFields"
)
ADDITION_REFS = _words("product opportunity invoiceGrouping")
CONFIGURATION_FIELDS = _words(
    "id name type status company contact site locationId location businessUnitId department "
    "deviceIdentifier serialNumber modelNumber tagNumber purchaseDate installationDate installedBy "
    "warrantyExpirationDate vendorNotes notes macAddress lastLoginName billFlag backupSuccesses "
    "backupIncomplete backupFailed backupRestores lastBackupDate backupServerName "
    "backupBillableSpaceGb backupProtectedDeviceList backupYear backupMonth ipAddress defaultGateway "
    "osType osInfo cpuSpeed ram localHardDrives parentConfigurationId vendor manufacturer questions "
    "activeFlag managementLink remoteLink sla mobileGuid displayVendorFlag companyLocationId "
    "showRemoteFlag showAutomateFlag needsRenewalFlag manufacturerPartNumber _info customFields"
)
CONFIGURATION_REFERENCE_FIELDS = _words("id deviceIdentifier _info")
"""ConfigurationReference, the body of `POST /service/tickets/{parentId}/configurations`."""
CONFIGURATION_REFS = _words(
    "type status company contact site location department installedBy vendor manufacturer sla"
)
COMPANY_FIELDS = _words(
    "id identifier name status addressLine1 addressLine2 city state zip country phoneNumber faxNumber "
    "website territory market accountNumber defaultContact dateAcquired sicCode parentCompany "
    "annualRevenue numberOfEmployees yearEstablished revenueYear ownershipType timeZoneSetup leadSource "
    "leadFlag unsubscribeFlag calendar vendorIdentifier taxIdentifier taxCode billingTerms "
    "invoiceTemplate pricingSchedule companyEntityType billToCompany billingSite billingContact "
    "invoiceDeliveryMethod invoiceToEmailAddress invoiceCCEmailAddress deletedFlag dateDeleted "
    "deletedBy mobileGuid facebookUrl twitterUrl linkedInUrl currency territoryManager "
    "resellerIdentifier isVendorFlag types site integratorTags _info customFields"
)
AGREEMENT_FIELDS = _words(
    "id name type company contact site subContractCompany subContractContact parentAgreement customerPO "
    "location department startDate endDate noEndingDateFlag opportunity cancelledFlag dateCancelled "
    "reasonCancelled sla workOrder internalNotes applicationUnits applicationLimit applicationCycle "
    "billingCycle billAmount billStartDate prorateFlag invoiceProratedAdditionsFlag invoiceDescription "
    "billTime billExpenses billProducts agreementStatus _info customFields"
)
AGREEMENT_TYPE_FIELDS = _words(
    "id name prefixSuffixOption defaultFlag inactiveFlag prePaymentFlag invoicePreSuffix location "
    "department restrictLocationFlag restrictDepartmentFlag sla applicationUnits applicationLimit "
    "applicationCycle applicationUnlimitedFlag oneTimeFlag coverAgreementTimeFlag "
    "coverAgreementProductFlag coverAgreementExpenseFlag coverSalesTaxFlag carryOverUnusedFlag "
    "allowOverrunsFlag expiredDays limit expireWhenZero chargeToFirmFlag employeeCompRate "
    "employeeCompNotExceed compHourlyRate compLimitAmount billingCycle billOneTimeFlag billingTerms "
    "invoicingCycle billAmount taxableFlag restrictDownPaymentFlag invoiceDescription topCommentFlag "
    "bottomCommentFlag workRole workType projectType invoiceTemplate billTime billExpenses billProducts "
    "billableTimeInvoiceFlag billableExpenseInvoiceFlag billableProductInvoiceFlag copyWorkRolesFlag "
    "copyWorkTypesFlag integrationXRef prorateFlag emailTemplate autoInvoiceFlag billZeroAmountFlag "
    "invoiceProratedAdditionsFlag _info"
)
BOARD_FIELDS = _words("id name location department inactiveFlag projectFlag _info")
STATUS_FIELDS = _words(
    "id name board sortOrder displayOnBoard inactive closedStatus timeEntryNotAllowed defaultFlag "
    "escalationStatus customerPortalDescription customerPortalFlag _info"
)
TYPE_FIELDS = _words(
    "id name category defaultFlag inactiveFlag requestForChangeFlag integrationXref board _info"
)
PRIORITY_FIELDS = _words("id name color sortOrder defaultFlag imageLink urgencySortOrder level _info")
CATALOG_FIELDS = _words(
    "id identifier description inactiveFlag subcategory type productClass serializedFlag unitOfMeasure "
    "price cost taxableFlag customerDescription recurringFlag recurringRevenue recurringCost "
    "integrationXRef _info customFields"
)
CONFIGURATION_TYPE_FIELDS = _words("id name inactiveFlag systemFlag _info")
READ_ONLY = frozenset({"id", "_info"})
BILL_CUSTOMER = ("Billable", "DoNotBill", "NoCharge")


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


class ManageApiError(Exception):
    """Raised inside handlers; rendered as Manage's ErrorResponseMessage."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        errors: list[dict[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors
        self.headers = dict(headers or {})

    def response(self) -> JSONResponse:
        body = {"code": self.code, "message": self.message, "errors": self.errors}
        return JSONResponse(body, status_code=self.status, headers=self.headers)


def invalid(resource: str, field_name: str, message: str, code: str = "InvalidField") -> ManageApiError:
    return ManageApiError(
        400,
        "InvalidObject",
        f"{resource} object is invalid",
        [{"code": code, "message": message, "resource": resource, "field": field_name}],
    )


# ---------------------------------------------------------------------------------------------
# Faults and call records
# ---------------------------------------------------------------------------------------------


@dataclass
class Fault(ScriptedFault):
    """A scripted failure. `path` is API-relative (`/service/tickets`) and matches the concrete
    path or its route template (`/service/tickets/{id}`); `*` at the end matches a prefix."""

    ignore_case = False

    def response(self) -> JSONResponse:
        self.claim()
        if self.status == 429:
            wait = self.retry_after if self.retry_after is not None else 30
            return JSONResponse(
                {
                    "error": "ConnectWiseAPI",
                    "message": f"Too many requests. Please try again in {wait} seconds.",
                },
                status_code=429,
                headers={"Retry-After": retry_after_value(wait)},
            )
        if self.status >= 500:
            body = {
                "code": "UnexpectedServerError",
                "message": "An unexpected server error has occurred: Execution Timeout Expired. "
                "The timeout period elapsed prior to completion of the operation.",
                "errors": None,
            }
        else:
            body = {"code": "InjectedFault", "message": f"injected {self.status}", "errors": None}
        return JSONResponse(body, status_code=self.status, headers=self.retry_headers())
