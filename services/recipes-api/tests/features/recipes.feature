Feature: Managing recipes
  Cooks publish recipes, find them, change them and remove them. Every mistake is explained in the
  cook's language (English or Vietnamese) and changes nothing.

  Background:
    Given a running recipes service
    And I am signed in as "alice"

  Scenario Outline: Create, list, update and delete a recipe (<locale>)
    When I create a recipe named "Gỏi cuốn" tagged "vietnamese, Fresh" with ingredients "rice paper, shrimp"
    Then the response status is 201
    And the response carries a Location and an ETag
    When I list recipes tagged "fresh"
    Then the list contains only "Gỏi cuốn"
    When I rename the recipe to "Gỏi cuốn tôm" with its current ETag
    Then the response status is 200
    When I fetch the recipe
    Then its name is "Gỏi cuốn tôm"
    When I rename the recipe to "Stale rename" with the ETag from its creation
    Then the response is a "precondition_failed" problem with status 412
    When I delete the recipe
    Then the response status is 204
    When I fetch the recipe in "<locale>"
    Then the response is a "recipe_not_found" problem with status 404
    And the problem is in "<locale>" with the title "<not_found_title>"

    Examples:
      | locale | not_found_title          |
      | en     | Recipe not found         |
      | vi     | Không tìm thấy công thức |

  Scenario Outline: An invalid recipe is refused with every broken rule explained (<locale>)
    When I create a recipe in "<locale>" with a blank name, a 60-character tag and no ingredients
    Then the response is a "validation_failed" problem with status 422
    And the problem is in "<locale>" with the title "<title>"
    And the problem explains "name" as "blank": "<blank>"
    And the problem explains "tags[0]" as "too_long": "<too_long>"
    And the problem explains "ingredients" as "required": "<required>"
    And no recipe was stored

    Examples:
      | locale | title                 | blank               | too_long                        | required    |
      | en     | Invalid request       | must not be blank   | must be at most 50 characters long | is required |
      | vi     | Yêu cầu không hợp lệ  | không được để trống | chỉ được dài tối đa 50 ký tự    | là bắt buộc |

  Scenario Outline: Requests the service cannot take are answered with a problem (<code>, <locale>)
    When I send <method> "<path>" in "<locale>" with a <body_kind> body
    Then the response is a "<code>" problem with status <status>
    And the problem is in "<locale>" with the title "<title>"
    And no recipe was stored

    Examples:
      | locale | method | path               | body_kind     | code                   | status | title                              |
      | en     | POST   | /recipes           | truncated     | malformed_json         | 400    | Malformed JSON                     |
      | vi     | POST   | /recipes           | truncated     | malformed_json         | 400    | JSON không hợp lệ                  |
      | en     | POST   | /recipes           | form-encoded  | unsupported_media_type | 415    | Unsupported media type             |
      | vi     | POST   | /recipes           | form-encoded  | unsupported_media_type | 415    | Kiểu dữ liệu không được hỗ trợ     |
      | en     | POST   | /recipes           | oversized     | payload_too_large      | 413    | Request body too large             |
      | vi     | POST   | /recipes           | oversized     | payload_too_large      | 413    | Nội dung yêu cầu quá lớn           |
      | en     | POST   | /recipes           | unknown-field | validation_failed      | 422    | Invalid request                    |
      | en     | GET    | /recipes?limit=500 | empty         | validation_failed      | 422    | Invalid request                    |
      | vi     | GET    | /recipes?page=0    | empty         | validation_failed      | 422    | Yêu cầu không hợp lệ               |
      | en     | GET    | /menus             | empty         | route_not_found        | 404    | Not found                          |
      | vi     | GET    | /menus             | empty         | route_not_found        | 404    | Không tìm thấy                     |
      | en     | PATCH  | /recipes           | empty         | method_not_allowed     | 405    | Method not allowed                 |
      | vi     | PATCH  | /recipes           | empty         | method_not_allowed     | 405    | Phương thức không được phép        |
      | en     | GET    | /recipes/42        | empty         | recipe_not_found       | 404    | Recipe not found                   |
      | vi     | DELETE | /recipes/42        | empty         | recipe_not_found       | 404    | Không tìm thấy công thức           |

  Scenario: Searching and paging through recipes
    Given recipes named "Garlic noodles", "Coconut curry" and "Apple crumble" exist
    When I search recipes for "garlic"
    Then the list contains only "Garlic noodles"
    When I list recipes sorted by "name" 2 per page, page 2
    Then the list contains only "Garlic noodles"
    And the list reports 3 recipes on 2 pages
